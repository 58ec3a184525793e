"""A TEST DOUBLE of Cloud Hypervisor v54, for hosts where the real binary cannot run: the
contract double of the backend's tests.

It boots nothing. It checks what the backend asks of Cloud Hypervisor against the contract
(``tests/contracts/``: the command-line grammar, written here by hand from
``cloud-hypervisor-cli.md``, and the REST API, validated against the OpenAPI file as loaded), and
answers as the contract says. It starts bare, as the backend starts Cloud Hypervisor (the API on
``--api-socket``, events on ``--event-monitor``); its VM is the ``VmConfig`` body of ``vm.create``
(checked against the schema) and runs once ``vm.boot`` comes: hybrid vsock on the config's vsock
socket in front of a kestrel run as a host process, the serial port on its serial socket. At
``vm.boot`` it writes down the ids and cgroups it runs with, for the confinement tests.
"""
