"""RQ entry points: thin job functions that take ids and call the services; queues named by purpose."""
