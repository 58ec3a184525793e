"""Refuse names Volant, pip or Python would refuse, before anything is written."""

import keyword
import re
import sys

# The rule volant-core applies to the names VMs and manifests give plugins (PluginName).
PLUGIN_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
# PEP 508 project names, as pip accepts them.
DISTRIBUTION = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")

problems = []
plugin_name = "{{ cookiecutter.plugin_name }}"
distribution = "{{ cookiecutter.distribution }}"
module = "{{ cookiecutter.module }}"
if not PLUGIN_NAME.fullmatch(plugin_name) or len(plugin_name) > 63:
    problems.append(
        f"plugin_name {plugin_name!r}: use lower-case letters, digits, '.', '_' or '-', starting with a "
        "letter or digit (at most 63 characters), e.g. my-vmm"
    )
if not DISTRIBUTION.fullmatch(distribution):
    problems.append(
        f"distribution {distribution!r}: a pip package name is letters, digits, '.', '_' or '-', "
        "starting and ending with a letter or digit, e.g. volant-my-vmm"
    )
if not module.isidentifier() or keyword.iskeyword(module) or module != module.lower():
    problems.append(f"module {module!r}: use a lower-case Python identifier, e.g. volant_my_vmm")
if problems:
    print("cannot generate the plugin:\n  " + "\n  ".join(problems), file=sys.stderr)
    sys.exit(1)
