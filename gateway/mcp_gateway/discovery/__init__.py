"""Tool discovery for large profiles: a lexical index and the search/describe/call meta-tools."""
