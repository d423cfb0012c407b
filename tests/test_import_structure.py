"""The house without circles (docs/how-it-works.md, "What is where"): no module imports one
that imports it back, each app imports only from the apps below it, and their migrations
depend only on those below. The demo is imported by nothing of the product.

Every module is parsed, imports inside functions included (an import moved into a
function to dodge a cycle is still the cycle).
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Bottom up. `config` is the project: the URL confs, settings, WSGI/ASGI and gunicorn's
# configuration that wire the apps together; no app imports it. The front desk's pages, the
# integrations with other systems, operations and the demo sit on the engine, `backfill`.
LAYERS = [
    "audit",
    "clinic",
    "waitlist",
    "scheduling",
    "backfill",
    "integrations",
    "privacy",
    "frontdesk",
    "ops",
    "demo",
    "config",
]


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules():
    return {module_name(path): path for app in LAYERS for path in (ROOT / app).rglob("*.py")}


def imported_names(module, source, is_package=False):
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph():
    modules = project_modules()
    graph = {}
    for module, path in modules.items():
        targets = set()
        for name in imported_names(module, path.read_text(), path.name == "__init__.py"):
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def layer(module):
    return module.split(".")[0]


def cycles(graph):
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_imports_one_that_imports_it_back():
    assert cycles(import_graph()) == []


def test_each_app_imports_only_from_the_layers_below_it():
    upward = [
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        for target in sorted(targets)
        if LAYERS.index(layer(target)) > LAYERS.index(layer(module))
    ]

    assert upward == []


def test_the_product_imports_nothing_of_the_demo():
    """The demo (seed_demo, demo_scenario and their histories) is run by hand; a page, a job or
    a command of the product that needed it would break in a clinic that never seeded one."""
    importers = [
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        for target in sorted(targets)
        if layer(target) == "demo" and layer(module) != "demo"
    ]

    assert importers == []


def test_the_project_package_holds_no_models_and_no_app_imports_it():
    assert not (ROOT / "config" / "models.py").exists()
    assert [module for module, targets in import_graph().items() if "config.settings" in targets] == []


def test_the_check_sees_a_cycle_and_imports_inside_functions():
    source = "def run():\n    from . import tasks\n    from backfill.offers import offer_slot\n"

    assert {"backfill.tasks", "backfill.offers.offer_slot"} <= set(imported_names("backfill.models", source))
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# Migrations that depend on an app above their own, each because its app's model holds a
# foreign key to a model of that app (clinic's OutboundEmail.appointment and waitlist's
# WaitlistEntry.original_appointment and booked_appointment point at scheduling.Appointment;
# clinic 0012 only orders itself after scheduling 0007). Dropping such an edge cannot make an
# existing database's history inconsistent, but on a fresh one it reorders 18 later
# migrations of clinic, waitlist and backfill relative to scheduling's, and moving the
# foreign keys down is a model change: so they are kept, listed here, and no new one may join.
KNOWN_UPWARD_MIGRATIONS = {
    "clinic.0002_initial -> scheduling.0001_initial",
    "clinic.0012_sms_channel_contact_rules -> scheduling.0007_external_ids",
    "waitlist.0001_initial -> scheduling.0001_initial",
}


# Apps whose label is not their top folder's name.
LABEL_LAYERS = {"hl7": "integrations"}


def migration_dependencies():
    """(app label, migration name, depended-on app label, its migration) for every project migration."""
    for path in sorted([*ROOT.glob("*/migrations/0*.py"), *ROOT.glob("*/*/migrations/0*.py")]):
        app = path.parent.parent.name
        if layer(module_name(path)) not in LAYERS:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == "dependencies" for target in node.targets
            ):
                for dependency in node.value.elts:  # swappable_dependency(...) is the user model's: skipped
                    if isinstance(dependency, ast.Tuple):
                        yield app, path.stem, *ast.literal_eval(dependency)


def migration_layer(label):
    return LABEL_LAYERS.get(label, label)


def test_migrations_depend_only_on_the_layers_below_theirs():
    upward = {
        f"{app}.{name} -> {other}.{other_name}"
        for app, name, other, other_name in migration_dependencies()
        if migration_layer(other) in LAYERS
        and LAYERS.index(migration_layer(other)) > LAYERS.index(migration_layer(app))
    }

    assert upward == KNOWN_UPWARD_MIGRATIONS


def test_the_migration_check_reads_every_dependency():
    found = set(migration_dependencies())
    assert ("clinic", "0002_initial", "scheduling", "0001_initial") in found
    assert ("waitlist", "0001_initial", "clinic", "0001_initial") in found
    assert ("hl7", "0002_roles", "backfill", "0013_managers_see_every_webhook_endpoint") in found
    assert ("ops", "0001_the_sweep_is_ops", "backfill", "0007_sweep_every_half_minute") in found
