from job.report.format import fmt_count, fmt_float, fmt_int, fmt_percent, fmt_rate, fmt_seconds


def test_formatters():
    assert fmt_percent(0.97123) == "97.12%"
    assert fmt_percent(None) == "—"
    assert fmt_percent(float("nan")) == "—"
    from job.report.format import fmt_class_percent, fmt_interval, fmt_p, fmt_pp, fmt_pp_interval

    assert fmt_class_percent(None) == "no samples" and fmt_class_percent(None, "never predicted") == "never predicted"
    assert fmt_p(0.0004) == "< 0.001" and fmt_p(0.0123) == "0.012" and fmt_p(0.41) == "0.41" and fmt_p(None) == "—"
    assert fmt_pp(0.006) == "+0.6 pp" and fmt_pp(-0.012) == "-1.2 pp"
    from job.stats.metrics import Interval

    assert fmt_interval(Interval(0.912, 0.931)) == "[91.2%, 93.1%]" and fmt_interval(None) == "—"
    assert fmt_pp_interval(Interval(-0.009, 0.021)) == "[-0.9, +2.1]"
    assert fmt_float(0.123456) == "0.1235"
    assert fmt_seconds(18.66) == "18.66 s" and fmt_seconds(0.05) == "50 ms" and fmt_seconds(250) == "250 s"
    assert fmt_int(1168460) == "1,168,460"
    assert fmt_rate(12345.6) == "12,346/s"


def test_counts_agree_with_their_noun():
    assert fmt_count(1, "model") == "1 model" and fmt_count(3, "MLP") == "3 MLPs"
    assert fmt_count(1000, "row") == "1,000 rows"


def test_a_difference_that_rounds_to_zero_is_plus_zero_never_minus_zero():
    from job.report.format import fmt_pp, fmt_pp_interval
    from job.stats.metrics import Interval

    assert fmt_pp_interval(Interval(-0.0001, 0.02)) == "[+0.0, +2.0]"
    assert fmt_pp(-0.0004) == "+0.0 pp" and fmt_pp(-0.006) == "-0.6 pp" and fmt_pp(0.0) == "+0.0 pp"


def test_the_statistics_sentences_never_print_minus_zero():
    """#25 item 16: the pair verdicts and the choice's differences use the same '+0.0' rule as the tables."""
    from job.stats.choice import _pp
    from job.stats.metrics import signed_pp

    assert signed_pp(-0.0004) == "+0.0" and signed_pp(-0.004) == "-0.4" and signed_pp(0.0004) == "+0.0"
    assert _pp(-0.0001) == "+0.0 pp" and _pp(-0.012) == "−1.2 pp"
