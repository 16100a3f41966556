"""Storage: record schema, the local SQLite store and the InfluxDB writer."""
