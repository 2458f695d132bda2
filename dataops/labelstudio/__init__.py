"""Label Studio client layer: the only code in dataops that talks to Label Studio."""
