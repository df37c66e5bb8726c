"""The load-testing harness behind `switchyard loadtest` (docs/loadtest.md)."""
