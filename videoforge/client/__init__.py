"""The API's HTTP client and the `upload` / `jobs` commands built on it: no server code loaded."""
