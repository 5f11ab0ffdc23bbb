-- POST /api/v1/auth/token (the OAuth2 password grant, form-encoded) as one customer:
-- BENCH_LOGIN_BODY is the form body (bench/bench.py url-encodes it).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = os.getenv("BENCH_LOGIN_BODY")
