"""The arq worker: rollup jobs and the sweep that re-enqueues whatever is still dirty, and the
worker's metrics (every job timed, the rollup backlog)."""
