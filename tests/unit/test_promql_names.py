"""Reading the metric names out of PromQL (dashboards, alert rules)."""

import pytest

from pfi.observability.promql_names import PromQLSyntaxError, metric_names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        (
            'sum by (source, message_type) (rate(a_total{source=~"$source"}[$__rate_interval]))',
            {"a_total"},
        ),
        ("sum(rate(a[5m])) by (le) / ignoring(x) group_left(y) b", {"a", "b"}),
        ("histogram_quantile(0.95, sum without (instance) (rate(h_bucket[5m])))", {"h_bucket"}),
        ("a offset 1w and on(source) b unless c or d", {"a", "b", "c", "d"}),
        ('label_replace(v, "dst", "$1", "src", "(.*)")', {"v"}),
        ("rate(x[1h:5m] offset -1h) > bool 3", {"x"}),
        ("1e3 * Inf + NaN - 0x1F + .5", set()),
        ("time() - 3600", set()),
        ('{__name__="pfi_up", job="pfi"}', {"pfi_up"}),
        (
            'pfi:feed_silence_seconds{source="SGL", message_type=""} > 1800',
            {"pfi:feed_silence_seconds"},
        ),
        ("x @ start()", {"x"}),
        ("max_over_time(y[${__range}])  # trailing comment names_nothing", {"y"}),
        ('count_values("version", build_info)', {"build_info"}),
        ("topk(5, z)", {"z"}),
    ],
)
def test_metric_names_are_found_and_nothing_else(expr, names):
    assert metric_names(expr).names == names


def test_regex_name_matchers_are_kept_apart():
    found = metric_names('{__name__=~"pfi_.*"}')
    assert found.names == set()
    assert found.name_patterns == {"pfi_.*"}


def test_a_label_value_that_looks_like_a_metric_is_not_one():
    assert metric_names('a{job="pfi_messages_received_total"}').names == {"a"}


@pytest.mark.parametrize("bad", ["a{job=pfi}", "rate(a[5m)", 'a{job="x}'])
def test_unreadable_promql_is_an_error_not_a_silent_pass(bad):
    with pytest.raises(PromQLSyntaxError):
        metric_names(bad)
