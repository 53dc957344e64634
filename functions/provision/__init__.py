"""CloudFormation custom resources of the CDK app, and the token-age probe.

Every function here answers CloudFormation itself (a PUT to the pre-signed
``ResponseURL``) instead of going through the CDK provider framework, whose
framework Lambda logs the responses it relays: a response here can carry the
origin secret (``Custom::OriginlockOriginHeaderValue``).
"""
