"""kestrel, the guest agent: PID 1 of a Volant guest, or an ordinary process in host mode.

Standard library only, relative imports only: the package is copied into the guest image under
another name and must not import anything from ``volant_core``.
"""
