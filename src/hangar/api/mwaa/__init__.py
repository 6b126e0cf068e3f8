"""The MWAA-compatible API: botocore's `mwaa` model (2020-07-01) served by the control plane.

`boto3.client("mwaa", endpoint_url=...)` works unchanged against it. Routes call
the same domain functions as the native API; this package only translates
shapes, verifies SigV4 and formats errors the AWS way.
"""
