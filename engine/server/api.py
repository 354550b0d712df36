"""The JSON API under /api/v1 (resources: workflows, instances, events, history, tasks, ...)."""

from fastapi import APIRouter

router = APIRouter()
