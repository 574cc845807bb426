"""The server-rendered dashboard: pages by subject, their view models, the chart, and the flash message."""
