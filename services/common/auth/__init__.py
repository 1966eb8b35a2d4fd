"""Bearer-token authentication and SMART-style scopes, shared by both services."""
