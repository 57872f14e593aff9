"""polyfit's HTTP API (``polyfit-api``): the client's operations over JSON, for users without
direct access to Redis. One router per resource; the schema is ``polyfit.models``'."""
