"""Business: B2B billing, cost allocation, trunk capacity (Erlang B), account usage, the resellers' CRM API and its tokens, support triggers and sinks."""
