"""Per-org usage: time series and rankings over the hourly ``UsageSample`` rows."""
