from airflow_provider_canvas_reports.canvas.headers import header
from airflow_provider_canvas_reports.canvas.pagination import next_page


def test_header_lookup_is_case_insensitive():
    assert header({"Retry-After": "5"}, "retry-after") == "5"
    assert header({"retry-after": "5"}, "Retry-After") == "5"
    assert header({"RETRY-AFTER": "5"}, "retry-after") == "5"
    assert header({}, "retry-after") is None
    assert header(None, "retry-after") is None


def test_the_next_page_is_read_from_a_link_header_of_any_case():
    link = '<https://canvas.example/api/v1/accounts/1/reports/x?page=2>; rel="next"'
    for name in ("Link", "link", "LINK"):
        assert next_page({name: link}) == "https://canvas.example/api/v1/accounts/1/reports/x?page=2"
    assert next_page({}) is None
