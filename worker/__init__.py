"""The arq worker: rollup jobs and the sweep that re-enqueues whatever is still dirty."""
