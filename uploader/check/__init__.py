"""Checking a file, with no network and no state: the CSV scanner (csvscan) and the cell rules (rules)."""
