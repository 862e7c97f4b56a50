"""The Notion connector: tasks from a Notion queue become jobs, and jobs are written back."""
