#!/usr/bin/python3
"""Signs S3 requests with botocore's SigV4 signer (S3SigV4Auth), for
sigv4_test.cpp to compare with xpscale's byte for byte.

stdin: a JSON list of cases {method, scheme, host, bucket, key, params:
[[name, value], ...], headers: [[name, value], ...], body, access_key,
secret_key, token, region, date ("YYYYMMDDTHHMMSSZ")}. The key is encoded
the way botocore's serializer encodes S3 keys. stdout: a JSON list of
{path, canonical_request, string_to_sign, authorization}.
"""
import json
import sys

import botocore.auth
import botocore.credentials
from botocore.awsrequest import AWSRequest
from botocore.utils import percent_encode


def sign(case):
    path = "/" + percent_encode(case["bucket"], safe="")
    if case["key"]:
        path += "/" + percent_encode(case["key"], safe="/~")
    request = AWSRequest(
        method=case["method"],
        url=f'{case["scheme"]}://{case["host"]}{path}',
        params=[tuple(p) for p in case["params"]],
        headers=dict(case["headers"]),
        data=case["body"].encode(),
    )
    creds = botocore.credentials.Credentials(
        case["access_key"], case["secret_key"], case["token"] or None
    )
    auth = botocore.auth.S3SigV4Auth(creds, "s3", case["region"])
    # S3SigV4Auth.add_auth, step by step, with the case's date for "now"
    # and the intermediate strings kept.
    request.context["timestamp"] = case["date"]
    auth._modify_request_before_signing(request)
    canonical = auth.canonical_request(request)
    string_to_sign = auth.string_to_sign(request, canonical)
    auth._inject_signature_to_request(request, auth.signature(string_to_sign, request))
    return {
        "path": path,
        "canonical_request": canonical,
        "string_to_sign": string_to_sign,
        "authorization": request.headers["Authorization"],
    }


json.dump([sign(c) for c in json.load(sys.stdin)], sys.stdout)
