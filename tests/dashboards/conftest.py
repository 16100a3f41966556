"""The review panels' checks live in a helper module: let pytest explain their asserts."""

import pytest

pytest.register_assert_rewrite("tests.dashboards.review_data")
