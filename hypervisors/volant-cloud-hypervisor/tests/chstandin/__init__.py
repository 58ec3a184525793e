"""A TEST DOUBLE of Cloud Hypervisor v54, for hosts where the real binary cannot run.

It boots nothing. It checks what the backend asks of Cloud Hypervisor against the contract
(``tests/contracts/``: the command-line grammar, written here by hand from
``cloud-hypervisor-cli.md``, and the REST API, validated against the OpenAPI file as loaded), and
answers as the contract says: the REST API on ``--api-socket``, hybrid vsock on ``--vsock socket=``
in front of a kestrel run as a host process, the serial port on ``--serial socket=``, and events on
``--event-monitor``.
"""
