"""The operations the CLI, the JSON API and the dashboard share, so none of them is written twice.

Each is an async function of plain values taking `db` and `now`, returning a small frozen dataclass of what
happened, or raising `OpError` (not_found, conflict, invalid) with a message an operator can act on; a refused
operation changes nothing. The read views (`campaign_views`, `account_views`, `lead_views`, `sends`) gather
what the inspection commands print.
"""
