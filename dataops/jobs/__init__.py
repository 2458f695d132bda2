"""Jobs: records of long work, started through `dispatch`, run one attempt at a time by
`runner.execute` in this process or on a worker."""
