"""The consent service's routers, one per resource or concern; state comes from app.state."""
