"""Recipes: YAML files validated into pydantic models (see schema.py and loader.py)."""

from edgekd.recipe.loader import load_recipe, parse_overrides
from edgekd.recipe.schema import Recipe, recipe_json_schema

__all__ = ["Recipe", "load_recipe", "parse_overrides", "recipe_json_schema"]
