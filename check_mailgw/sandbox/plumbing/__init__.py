"""What every sandbox service stands on: the throwaway CA, event loops in threads, DNS, the
HTTPS server, a CONNECT proxy."""
