"""The HTTP side: the OAuth connect flow and the `/quickbooks/auth/` endpoints.

`app.create_app` builds the Starlette application, `server.serve` runs it for
`qbo-pipeline serve`; the work itself is in `qbo_pipeline.companies`.
"""
