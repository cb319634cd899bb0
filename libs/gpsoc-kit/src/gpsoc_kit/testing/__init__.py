"""Test support shared by every service: real PostgreSQL and Kafka, never mocks of them."""
