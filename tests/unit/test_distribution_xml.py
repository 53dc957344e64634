"""The distribution's configuration is edited as CloudFront's own XML: only the header value
changes, and every other element — known to botocore or not — is sent back as it came."""

from __future__ import annotations

from xml.etree import ElementTree

from rotate.adapters import xml_header_values, xml_with_header_value

NS = "http://cloudfront.amazonaws.com/doc/2020-05-31/"
CONFIG = f"""<?xml version="1.0" encoding="UTF-8"?>
<DistributionConfig xmlns="{NS}"><CallerReference>r</CallerReference>
<Origins><Quantity>2</Quantity><Items>
<Origin><Id>api</Id><DomainName>a.example</DomainName><FutureOriginSetting>42</FutureOriginSetting>
<CustomHeaders><Quantity>2</Quantity><Items>
<OriginCustomHeader><HeaderName>X-CF-API-Gateway-Token</HeaderName><HeaderValue>old</HeaderValue></OriginCustomHeader>
<OriginCustomHeader><HeaderName>x-other</HeaderName><HeaderValue>keep</HeaderValue></OriginCustomHeader>
</Items></CustomHeaders></Origin>
<Origin><Id>static</Id><DomainName>s.example</DomainName>
<CustomHeaders><Quantity>1</Quantity><Items>
<OriginCustomHeader><HeaderName>x-cf-api-gateway-token</HeaderName><HeaderValue>old</HeaderValue></OriginCustomHeader>
</Items></CustomHeaders></Origin>
</Items></Origins>
<FutureEdgeFeature><Enabled>true</Enabled></FutureEdgeFeature><Comment>c &amp; d</Comment>
</DistributionConfig>""".encode()
HEADER = "x-cf-api-gateway-token"


def canonical(raw: bytes) -> str:
    return ElementTree.canonicalize(raw.decode().split("?>", 1)[1])


def test_only_the_header_value_changes_on_every_target_origin() -> None:
    edited = xml_with_header_value(CONFIG, HEADER, (), "new")

    assert xml_header_values(edited, HEADER, ()) == {"api": "new", "static": "new"}
    expected = CONFIG.replace(b">old<", b">new<")
    assert canonical(edited) == canonical(expected)
    # unknown elements, the other header, escaping: all as they were
    assert b"<FutureOriginSetting>42</FutureOriginSetting>" in edited
    assert b"<FutureEdgeFeature><Enabled>true</Enabled></FutureEdgeFeature>" in edited
    assert b"<HeaderValue>keep</HeaderValue>" in edited
    assert b"c &amp; d" in edited
    # CloudFront's namespace stays the default one (no ns0: prefixes)
    assert (
        edited.split(b"?>", 1)[1].lstrip().startswith(f'<DistributionConfig xmlns="{NS}"'.encode())
    )


def test_only_the_named_origins_change() -> None:
    edited = xml_with_header_value(CONFIG, HEADER, ("static",), "new")

    assert xml_header_values(edited, HEADER, ()) == {"api": "old", "static": "new"}
    assert xml_header_values(edited, HEADER, ("api",)) == {"api": "old"}
