from job.report.format import fmt_float, fmt_int, fmt_percent, fmt_rate, fmt_seconds


def test_formatters():
    assert fmt_percent(0.97123) == "97.12%"
    assert fmt_percent(None) == "no samples"
    assert fmt_percent(float("nan")) == "no samples"
    assert fmt_float(0.123456) == "0.1235"
    assert fmt_seconds(18.66) == "18.66 s" and fmt_seconds(0.05) == "50 ms" and fmt_seconds(250) == "250 s"
    assert fmt_int(1168460) == "1,168,460"
    assert fmt_rate(12345.6) == "12,346/s"
