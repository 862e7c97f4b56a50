"""Reports made from the platform's own records: the daily report (issue 10).

`day` chooses and checks the UTC day; `daily` and `operations` read its figures in one
snapshot; `charts`, `render_html` (with `render_parts`) and `render_csv` render them;
`files` writes and reads the report files; `notify` sends the one-line summary; `service`
puts these together for the CLI, the API and the scheduler.
"""
