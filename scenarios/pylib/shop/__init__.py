"""A tiny pretend application with the classic ways Python code leaks memory.

Each module has a leaky version of a pattern next to a fixed one; the scenarios in this folder
exercise both, so `leakcheck run scenarios/` shows what a leak and a clean run look like.
"""
