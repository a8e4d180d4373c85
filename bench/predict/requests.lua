-- wrk script: POST /v1/predict with a random user (of 100,000) and merchant (of 2,000) per request.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
math.randomseed(os.time())
request = function()
  n = n + 1
  local body = string.format(
    '{"request_id":"bench-%d","entities":{"user_id":"u%d","merchant_id":"m%d"},"features":{"amount":%.2f,"country":"US","channel":"web"}}',
    n, math.random(0, 99999), math.random(0, 1999), math.random() * 200)
  return wrk.format(nil, nil, nil, body)
end
