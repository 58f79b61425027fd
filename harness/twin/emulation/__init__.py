"""The packet-level emulation twin: OVS + network namespaces, the os-ken controller,
fault injection, probes, cleanup and environment checks."""
