"""CareTeam, Goal and Appointment: views of a plan, read through the common version routes."""

from fastapi import APIRouter

from services.common.resource_routes import add_version_routes
from services.sip.plan_views import PLAN_VIEWS

router = APIRouter(prefix="/fhir")
for view in PLAN_VIEWS:
    add_version_routes(router, view.resource_type)
