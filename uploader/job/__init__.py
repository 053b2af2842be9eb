"""Job mode (`run`): the drop zones (folder or blob), the connector list from the job's environment, and one run
over every connector's new files."""
