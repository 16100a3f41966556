"""Alerts: rules from the config file, evaluated on stored records; outputs to InfluxDB,
a Kafka topic and webhooks."""
