"""The console's home page (a placeholder until the overview's numbers land)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from dataops.console.deps import ConsoleUser
from dataops.console.render import render

router = APIRouter()


@router.get("/")
def overview(request: Request, user: ConsoleUser) -> HTMLResponse:
    return render(request, "overview/index.html", {"title": "Overview"}, user=user)
