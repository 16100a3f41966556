"""Webhook targets are checked at load time; each error names the field and the fix."""

from __future__ import annotations

import pytest

from seawatch.config import load_settings
from seawatch.contracts.errors import ConfigError


def _load(**hook):
    return load_settings(alerts__webhooks=[hook]).alerts.webhooks[0]


def _refused(**hook) -> str:
    with pytest.raises(ConfigError) as info:
        _load(**hook)
    return str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://ops.example/hooks/seawatch",
        "https://ops.example:8443/hook?channel=alerts",
        "http://127.0.0.1:9000/hook",
        "http://localhost/hook",
        "http://[::1]:9000/hook",
    ],
)
def test_good_targets_are_accepted(url):
    assert _load(url=url).url == url


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://ops.example/hook", "scheme 'ftp' is not allowed; use https://"),
        ("file:///etc/passwd", "scheme 'file' is not allowed"),
        ("ops.example/hook", "scheme '(none)' is not allowed"),
        ("https:///hook", "has no host"),
        ("https://ops.example:99999/hook", "is not a valid URL"),
    ],
)
def test_scheme_host_and_port(url, says):
    text = _refused(url=url)
    assert says in text and "alerts.webhooks.0.url" in text


def test_credentials_in_the_url_are_refused_and_not_echoed():
    text = _refused(url="https://bob:hunter2@ops.example/hook?key=k3y")
    assert "alerts.webhooks.0.url" in text and "put them in headers" in text
    assert "hunter2" not in text and "k3y" not in text and "bob" not in text


def test_plain_http_to_another_host_needs_allow_insecure():
    text = _refused(url="http://ops.example/hook")
    assert "alerts.webhooks.0.url" in text and "allow_insecure: true" in text
    assert _load(url="http://ops.example/hook", allow_insecure=True).allow_insecure


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "https://169.254.10.1/hook",
        "https://[fe80::1]/hook",
        "https://[::ffff:169.254.169.254]/hook",
        "http://metadata.google.internal/computeMetadata/v1/",
        "https://[fd00:ec2::254]/hook",
    ],
)
def test_link_local_and_metadata_addresses_are_refused_even_when_insecure_is_allowed(url):
    text = _refused(url=url, allow_insecure=True)
    assert "link-local or a cloud metadata service" in text and "alerts.webhooks.0.url" in text


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        ({"Authorization": "Bearer abc\r\nX-Injected: 1"}, "line break or NUL"),
        ({"X-Key": "abc\n"}, "line break or NUL"),
        ({"X-Key": "a\0b"}, "line break or NUL"),
        ({"Bad Name": "v"}, "not a valid HTTP header name"),
        ({"X-Key\r\nX-Other": "v"}, "not a valid HTTP header name"),
    ],
)
def test_header_names_and_values_cannot_inject(headers, says):
    text = _refused(url="https://ops.example/hook", headers=headers)
    assert says in text and "alerts.webhooks.0.headers" in text
    assert "abc" not in text  # header values may be secrets: never echoed


def test_the_second_webhook_is_named_by_its_index():
    with pytest.raises(ConfigError, match=r"alerts\.webhooks\.1\.url"):
        load_settings(
            alerts__webhooks=[{"url": "https://a.example/h"}, {"url": "http://b.example/h"}]
        )


def test_headers_are_kept_out_of_repr():
    hook = _load(url="https://ops.example/hook", headers={"Authorization": "Bearer s3cr3t"})
    assert "s3cr3t" not in repr(hook)
    assert hook.headers == {"Authorization": "Bearer s3cr3t"}
