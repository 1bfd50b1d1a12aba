"""The clinic console: the pages schedulers and specialists use, over the services' APIs."""
