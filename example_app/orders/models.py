from __future__ import annotations

from pydantic import BaseModel, Field


class CreateOrder(BaseModel):
    """The body of ``POST /orders``."""

    customer: str = Field(min_length=1, max_length=100)
    total: float = Field(gt=0)


class Order(BaseModel):
    id: int
    customer: str
    total: float


class OrderCreated(BaseModel):
    """The ``orders.created`` event."""

    id: int
    customer: str
    total: float
