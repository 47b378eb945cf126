"""Microsoft 365: clouds, tokens, Graph, the error catalogue, and the two OAuth modes."""
