"""Virtual machines: typed devices, MachineSpec -> qemu argv (pure), and the
Machine lifecycle (launch, QMP, console, shutdown)."""
