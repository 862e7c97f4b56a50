from echopilot.cli.main import main

main()
