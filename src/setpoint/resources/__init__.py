"""Resource types: what each served kind is and the kind-specific rules it follows."""
