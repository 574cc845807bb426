"""Scheduled and recurring sends (jobs): creating executions when due, materialising their recipients as leads
for the send pipeline, and finalising them once every recipient is done."""
