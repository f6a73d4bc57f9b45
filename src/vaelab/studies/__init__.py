"""Studies as data: a YAML file of models x data sets x seeds, run by an executor, aggregated with CIs."""
