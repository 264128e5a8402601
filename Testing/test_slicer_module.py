"""Checks of the Slicer module that run without Slicer: API names, the .ui, packaging metadata.

* API names: ``DDICSlicer.py`` and ``DDICSlicerLib/*.py`` are parsed with ``ast``; every ``slicer.*`` chain,
  ``from slicer... import`` name, ``ctk.*`` class, member of a widget declared in the .ui and capitalised
  (VTK-style) method name must exist in the lists of Slicer's Python-reachable API
  (``../shared/slicer-api``, see its README); keyword arguments of ``slicer`` Python functions must be
  parameters; names added in 5.12 must sit under a ``try``/``hasattr`` guard (5.10 is supported). The checker
  is tested on a synthetic snippet with misspellings, so it can fail.
* The .ui: parsed as XML (always) and loaded with PySide6's ``QUiLoader`` offscreen when PySide6 is
  installed (Slicer's custom widgets replaced by their declared Qt base); ``self.ui.<name>`` and
  ``SlicerParameterName`` bindings match the widgets and the parameter node.
* Packaging: every .py of the module is in the CMake lists, and CMakeLists.txt, DDICSlicer.s4ext and
  DDICSlicer.json carry the required fields and agree.
"""

from __future__ import annotations

import ast
import json
import os
import re
import struct
import xml.etree.ElementTree as ET
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "DDICSlicer"
MODULE_FILE = MODULE_DIR / "DDICSlicer.py"
LIB_DIR = MODULE_DIR / "DDICSlicerLib"
UI_FILE = MODULE_DIR / "Resources" / "UI" / "DDICSlicer.ui"
API_DIR = Path(os.environ.get("DDIC_SLICER_API_DIR", REPO.parent / "shared" / "slicer-api"))
SLICER_FILES = [MODULE_FILE, *sorted(LIB_DIR.glob("*.py"))]

# Members of VTK classes outside Slicer's class lists (vtk.vtkMatrix4x4, vtkGeneralTransform, vtkPoints), which
# the lists do not cover (README "Known gaps"); every other capitalised method name must be a listed member.
VTK_OUTSIDE_LISTS = {"GetElement", "SetElement", "MultiplyPoint", "TransformPoint", "DeepCopy", "InsertNextPoint"}
# Capitalised names that are not VTK methods: Python classes/exceptions and Qt enum-like constants.
NOT_VTK = {"IDLE", "RUNNING"}

needs_api = pytest.mark.skipif(not (API_DIR / "python.txt").is_file(),
                               reason=f"Slicer API lists not found in {API_DIR} (set DDIC_SLICER_API_DIR)")


# --- the API index ------------------------------------------------------------------------------------------

class SlicerAPI:
    """Lookups in python.txt / vtk-classes.txt / qt-classes.txt (formats in the lists' README)."""

    def __init__(self, folder: Path):
        self.python: dict[str, str] = {}
        for line in self._lines(folder / "python.txt"):
            self.python[re.match(r"^[\w.]+", line).group(0)] = line
        self.members: dict[str, set] = {}
        self.bases: dict[str, list] = {}
        self.tags: dict[str, str] = {}
        self.all_vtk_members: set = set()
        self.qt_classes: dict[str, str] = {}
        for name in ("vtk-classes.txt", "qt-classes.txt"):
            for line in self._lines(folder / name):
                key = line.split(" [", 1)[0]
                if " :" in key or key.endswith(" :"):
                    cls, _, bases = key.partition(" :")
                    self.bases[cls] = [b.strip() for b in bases.split(",") if b.strip()]
                    if name == "qt-classes.txt":
                        self.qt_classes[cls] = line
                    continue
                cls, _, member = key.partition(".")
                if ":" in member:
                    kind, _, member = member.partition(":")
                    if kind == "cpponly":
                        continue
                    member = member.split("(")[0]
                if "[cpp-only]" in line:
                    continue
                self.members.setdefault(cls, set()).add(member)
                self.tags[f"{cls}.{member}"] = line
                if name == "vtk-classes.txt":
                    self.all_vtk_members.add(member)

    @staticmethod
    def _lines(path: Path):
        with open(path, encoding="utf-8") as fh:
            return [line.rstrip("\n") for line in fh if line.strip() and not line.startswith("#")]

    def has_member(self, cls: str, name: str, seen=None):
        """True / False, or None when the walk reaches a class the lists do not hold (Qt's own classes)."""
        seen = seen or set()
        if cls in seen:
            return False
        seen.add(cls)
        if cls not in self.bases:
            return None
        if name in self.members.get(cls, ()) or (name.endswith("_") and name[:-1] in self.members.get(cls, ())):
            return True
        results = [self.has_member(b, name, seen) for b in self.bases[cls]]
        return True if True in results else (None if None in results else False)

    def chain_members(self, cls: str, seen=None) -> set:
        seen = seen or set()
        if cls in seen or cls not in self.bases:
            return set()
        seen.add(cls)
        out = set(self.members.get(cls, ()))
        for b in self.bases[cls]:
            out |= self.chain_members(b, seen)
        return out

    def near_miss(self, cls: str, name: str) -> bool:
        """A name absent from the listed part of a class chain but one typo away from a listed member:
        with a Qt base that the lists do not hold, this is how a misspelt slot is still caught."""
        import difflib

        return bool(difflib.get_close_matches(name, self.chain_members(cls), n=1, cutoff=0.9))

    def member_line(self, cls: str, name: str, seen=None) -> str:
        seen = seen or set()
        if cls in seen or cls not in self.bases:
            return ""
        seen.add(cls)
        if f"{cls}.{name}" in self.tags:
            return self.tags[f"{cls}.{name}"]
        for b in self.bases[cls]:
            line = self.member_line(b, name, seen)
            if line:
                return line
        return ""

    def type_of(self, python_key: str):
        """The C++ class behind a python.txt entry (vtk/qt class, or runtime object's type=)."""
        line = self.python.get(python_key, "")
        if "[vtk-class]" in line or "[qt-class]" in line or "[qt-cpp-class]" in line:
            return python_key.split(".")[-1]
        match = re.search(r"\[type=(\w+)\]", line)
        return match.group(1) if match else None


@lru_cache(maxsize=1)
def api() -> SlicerAPI:
    return SlicerAPI(API_DIR)


# --- the checker --------------------------------------------------------------------------------------------

def _chain(node) -> list | None:
    """``a.b.c`` → ['a', 'b', 'c'] (None when the root is not a plain name)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id, *reversed(parts)]
    return None


def _guarded(stack) -> bool:
    """Inside ``try`` (handling ImportError/AttributeError/Exception) or ``if hasattr/getattr(...)``."""
    for node in stack:
        if isinstance(node, ast.Try):
            return True
        if isinstance(node, ast.If) and any(isinstance(n, ast.Name) and n.id in ("hasattr", "getattr")
                                            for n in ast.walk(node.test)):
            return True
    return False


def _signature_params(line: str):
    """Parameter names of a python.txt callable line, or None when it accepts **kwargs / is unknown."""
    match = re.match(r"^[\w.]+\((.*)\)\s*\[", line)
    if not match:
        return None
    params = []
    for part in match.group(1).split(","):
        part = part.strip()
        if part.startswith("**"):
            return None
        name = part.split("=")[0].strip().lstrip("*")
        if name:
            params.append(name)
    return params


def check_source(source: str, filename: str, ui_classes: dict | None = None) -> list[str]:
    """Problems with Slicer API names in one Python source (empty list: all names known)."""
    a = api()
    tree = ast.parse(source, filename)
    problems: list[str] = []
    ui_classes = ui_classes or {}
    # names bound by imports are modules or Python classes (queue.Queue, sitk.ReadImage), not MRML objects
    imported = {"qt", "vtk", "np", "ctk", "slicer"}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imported |= {(a.asname or a.name).split(".")[0] for a in node.names}
    # chains checked against python.txt: slicer.*, and Python modules shipped with Slicer (SampleData, ...)
    api_roots = {"slicer"} | {name for name in imported if "[module]" in a.python.get(name, "")}

    def report(node, text):
        problems.append(f"{filename}:{getattr(node, 'lineno', '?')}: {text}")

    def check_python_key(node, key, stack):
        line = a.python.get(key)
        if line is None:
            return False
        if ("[>=5.12]" in line or "[>5.12.3]" in line) and not _guarded(stack):
            report(node, f"{key} is not in Slicer 5.10; guard it with try/except or hasattr")
        return True

    def check_slicer_chain(node, parts, stack, call=None):
        # longest python.txt prefix, then members of its class
        for n in range(len(parts), 1, -1):
            key = ".".join(parts[:n])
            if key in a.python:
                check_python_key(node, key, stack)
                rest = parts[n:]
                if call is not None and n == len(parts):
                    params = _signature_params(a.python[key])
                    for kw in call.keywords:
                        if params is not None and kw.arg and kw.arg not in params:
                            report(node, f"{key}() has no parameter {kw.arg!r}")
                cls = a.type_of(key)
                if rest and not cls:
                    report(node, f"unknown Slicer API name {'.'.join(parts[:n + 1])}")
                elif rest and cls:
                    found = a.has_member(cls, rest[0])
                    if found is False:
                        report(node, f"{key} ({cls}) has no member {rest[0]!r}")
                    elif found:
                        member_line = a.member_line(cls, rest[0])
                        if ("[>=5.12]" in member_line or "[>5.12.3]" in member_line) and not _guarded(stack):
                            report(node, f"{key}.{rest[0]} is not in Slicer 5.10; guard it")
                return
            if parts[n - 1] in ("modules", "moduleNames") and n == 2:
                return  # slicer.modules.<name> of other extensions are not listed
        report(node, f"unknown Slicer API name {'.'.join(parts)}")

    def visit(node, stack):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("slicer", "SampleData"):
            for alias in node.names:
                key = f"{node.module}.{alias.name}"
                if key not in a.python:
                    report(node, f"unknown Slicer API name {key}")
                else:
                    check_python_key(node, key, stack)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("slicer.") and alias.name not in a.python:
                    report(node, f"unknown Slicer module {alias.name}")
                elif alias.name.startswith("slicer."):
                    check_python_key(node, alias.name, stack)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            parts = _chain(node.func)
            if parts and parts[0] in api_roots:
                check_slicer_chain(node, parts, stack, call=node)
        elif isinstance(node, ast.Attribute) and not isinstance(getattr(node, "_parent", None), ast.Attribute):
            parts = _chain(node)
            if parts and parts[0] in api_roots and not isinstance(getattr(node, "_parent", None), ast.Call):
                check_slicer_chain(node, parts, stack)
            elif parts and parts[0] == "ctk" and len(parts) >= 2 and parts[1].startswith("ctk"):
                if parts[1] not in a.qt_classes:
                    report(node, f"unknown CTK class ctk.{parts[1]}")
            elif parts and parts[:2] == ["self", "ui"] and len(parts) >= 4:
                cls = ui_classes.get(parts[2])
                found = a.has_member(cls, parts[3]) if cls else True
                if found is False or (found is None and a.near_miss(cls, parts[3])):
                    report(node, f"{cls} (self.ui.{parts[2]}) has no member {parts[3]!r}")
        if isinstance(node, ast.Attribute) and node.attr[:1].isupper() and node.attr[1:2].islower():
            name = node.attr
            is_call = isinstance(getattr(node, "_parent", None), ast.Call) and node._parent.func is node
            if is_call and name not in a.all_vtk_members and name not in VTK_OUTSIDE_LISTS | NOT_VTK:
                root = _chain(node)
                if not (root and root[0] in imported):
                    report(node, f"{name}() is not a method of any Slicer/MRML/VTK class in the lists")
        for child in ast.iter_child_nodes(node):
            child._parent = node
            visit(child, stack + [node])

    visit(tree, [])
    return problems


def ui_widgets() -> dict[str, str]:
    """name → class of every widget of the .ui (custom Slicer/CTK classes by their own name)."""
    root = ET.parse(UI_FILE).getroot()
    return {w.get("name"): w.get("class") for w in root.iter("widget")}


# --- tests of the checker itself ------------------------------------------------------------------------------

BAD_SNIPPET = '''
import slicer
from slicer.util import arrayFromVolumee
def f(node, seg):
    slicer.util.arrayFromVolume(node)
    slicer.util.arrayFromVolumes(node)
    seg.GetSegmentation().GetSegmentIdBySegmentNam("x")
    x = slicer.vtkMRMLLayoutNode.SlicerLayoutSideBySideVieww
    slicer.util.loadVolume("a.png", {"singleFile": True}, bogusOption=1)
    slicer.packaging.pip_ensure(["x"])
    ctk.ctkCollapsibleButon()
    self.ui.table.setMRMLTableNodee(None)
    import SampleData
    SampleData.SampleDataLogic.registerCustomSampleDataSource(category="x", sampleNames="y")
'''

GOOD_SNIPPET = '''
import slicer
from slicer.util import arrayFromVolume
def f(node, seg):
    slicer.util.arrayFromVolume(node)
    seg.GetSegmentation().GetSegmentIdBySegmentName("x")
    x = slicer.vtkMRMLLayoutNode.SlicerLayoutSideBySideView
    slicer.util.loadVolume("a.png", {"singleFile": True}, returnNode=False)
    if hasattr(slicer, "packaging"):
        slicer.packaging.pip_ensure(["x"])
    ctk.ctkCollapsibleButton()
    self.ui.table.setMRMLTableNode(None)
'''


@needs_api
def test_checker_flags_every_misspelling():
    problems = check_source(BAD_SNIPPET, "bad.py", {"table": "qMRMLTableView"})
    text = "\n".join(problems)
    for expected in ("slicer.util.arrayFromVolumee", "slicer.util.arrayFromVolumes", "GetSegmentIdBySegmentNam",
                     "SlicerLayoutSideBySideVieww", "no parameter 'bogusOption'", "not in Slicer 5.10",
                     "ctk.ctkCollapsibleButon", "setMRMLTableNodee", "no parameter 'sampleNames'"):
        assert expected in text, f"{expected!r} not reported:\n{text}"
    assert len(problems) == 9, text


@needs_api
def test_checker_accepts_correct_code():
    assert check_source(GOOD_SNIPPET, "good.py", {"table": "qMRMLTableView"}) == []


# --- the module ---------------------------------------------------------------------------------------------

@needs_api
@pytest.mark.parametrize("path", SLICER_FILES, ids=lambda p: p.name)
def test_slicer_api_names_exist(path):
    problems = check_source(path.read_text(encoding="utf-8"), path.name, ui_widgets())
    assert problems == [], "\n".join(problems)


ALLOWED_TOP_LEVEL = {"logging", "os", "shutil", "sys", "typing", "ctk", "numpy", "qt", "slicer", "vtk",
                     "DDICSlicerLib", "__future__", "json", "queue", "signal", "subprocess", "threading", "time",
                     "collections", "dataclasses", "pathlib", "importlib"}
# Engine modules that import neither torch nor anything Slicer lacks (checked below): the option records,
# their limits and defaults, the worker protocol version and the watchdog's cancel line. The panel imports
# these instead of keeping copies.
LIGHT_ENGINE_MODULES = {"ddic.diffusion.constants", "ddic.translate.options", "ddic.translate.options_document",
                        "ddic.translate.placement", "ddic.worker.protocol", "ddic.cli.watchdog"}


@pytest.mark.parametrize("path", SLICER_FILES, ids=lambda p: p.name)
def test_nothing_heavy_at_import(path):
    """File scope imports only stdlib, Slicer, Qt, VTK, ctk, numpy and the light engine modules."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""] if node.level == 0 else ["DDICSlicerLib"]
        for name in names:
            assert name.split(".")[0] in ALLOWED_TOP_LEVEL or name in LIGHT_ENGINE_MODULES, \
                f"{path.name}:{node.lineno} imports {name} at file scope"
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            pytest.fail(f"{path.name}:{node.lineno} calls something at import time")


def test_light_engine_modules_import_nothing_slicer_lacks():
    """What the panel imports at file scope from the engine loads no torch (checked in a fresh interpreter)."""
    import subprocess
    import sys

    code = (f"import sys\nfor m in {sorted(LIGHT_ENGINE_MODULES)!r}: __import__(m)\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} - set(sys.stdlib_module_names)))")
    env = {**os.environ, "PYTHONPATH": str(MODULE_DIR)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    loaded = {m for m in ast.literal_eval(out.stdout.strip()) if not m.startswith("_")}  # site's own hooks
    assert loaded <= {"ddic", "numpy"}, out.stdout


def test_translation_function_is_never_shadowed():
    """``_`` is slicer.i18n.tr: a function that also assigns ``_`` would raise UnboundLocalError at run time."""
    for path in SLICER_FILES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if not any(isinstance(n, ast.alias) and n.asname == "_" for n in ast.walk(tree)):
            continue
        for func in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.Lambda))):
            stored = {n.id for n in ast.walk(func) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
            assert "_" not in stored, f"{path.name}:{func.lineno} assigns _ and so hides the translation function"


def module_tree():
    return ast.parse(MODULE_FILE.read_text(encoding="utf-8"))


def test_template_shape():
    classes = {n.name: n for n in module_tree().body if isinstance(n, ast.ClassDef)}
    expected = (("DDICSlicer", "ScriptedLoadableModule"), ("DDICSlicerWidget", "ScriptedLoadableModuleWidget"),
                ("DDICSlicerLogic", "ScriptedLoadableModuleLogic"), ("DDICSlicerTest", "ScriptedLoadableModuleTest"))
    for name, base in expected:
        assert name in classes and base in [ast.unparse(b) for b in classes[name].bases], name
    wrapper = classes["DDICSlicerParameterNode"]
    assert [ast.unparse(d) for d in wrapper.decorator_list] == ["parameterNodeWrapper"]
    methods = {n.name for n in classes["DDICSlicerWidget"].body if isinstance(n, ast.FunctionDef)}
    assert {"setup", "cleanup", "enter", "exit", "onApplyButton"} <= methods
    test_methods = {n.name for n in classes["DDICSlicerTest"].body if isinstance(n, ast.FunctionDef)}
    assert "runTest" in test_methods and any(m.startswith("test_") for m in test_methods)


def parameter_fields() -> tuple[set, set]:
    """(fields of DDICSlicerParameterNode, CODE_MANAGED_PARAMETERS)."""
    tree = module_tree()
    fields, managed = set(), set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "DDICSlicerParameterNode":
            fields = {n.target.id for n in node.body if isinstance(n, ast.AnnAssign)}
        targets = [getattr(t, "id", "") for t in getattr(node, "targets", [])]
        if isinstance(node, ast.Assign) and "CODE_MANAGED_PARAMETERS" in targets:
            managed = set(ast.literal_eval(node.value))
    return fields, managed


def ui_bindings() -> dict[str, str]:
    """widget name → SlicerParameterName."""
    root = ET.parse(UI_FILE).getroot()
    bound = {}
    for w in root.iter("widget"):
        for p in w.findall("property"):
            if p.get("name") == "SlicerParameterName":
                bound[w.get("name")] = p.findtext("string")
    return bound


def test_ui_names_and_parameter_bindings():
    widgets = ui_widgets()
    source = MODULE_FILE.read_text(encoding="utf-8")
    used = set(re.findall(r"self\.ui\.(\w+)", source))
    assert used, "the widget uses no self.ui names?"
    assert used - set(widgets) == set(), f"self.ui names missing from the .ui: {sorted(used - set(widgets))}"
    fields, managed = parameter_fields()
    bound = ui_bindings()
    names = list(bound.values())
    assert len(names) == len(set(names)), "a parameter is bound to two widgets"
    assert set(names) - fields == set(), f"SlicerParameterName without a field: {sorted(set(names) - fields)}"
    assert managed <= fields, f"CODE_MANAGED_PARAMETERS not fields: {sorted(managed - fields)}"
    assert fields - managed == set(names), f"fields without a widget: {sorted(fields - managed - set(names))}"
    assert not (managed & set(names)), "a code-managed parameter is also bound in the .ui"


# Widget classes the parameter node wrapper can bind in Slicer 5.10 (guiConnectors.py matches exact types)
# and the field types each accepts; a combo box also needs a Choice annotation.
BINDABLE = {"QCheckBox": {"bool"}, "QPushButton": {"bool"}, "QSpinBox": {"int"}, "QSlider": {"int"},
            "QDoubleSpinBox": {"float"}, "ctkSliderWidget": {"float"}, "QComboBox": {"str", "int", "float", "bool"},
            "QLineEdit": {"str"}, "QTextEdit": {"str"}, "QLabel": {"str", "int", "float"},
            "qMRMLNodeComboBox": {"node"}}


def node_classes(annotation: ast.expr) -> list[str] | None:
    """The MRML classes of a node field as parameterNodeWrapper/util.py getNodeTypes lists them: a single
    ``vtkMRML...`` class, or the node classes of a ``Union[...]``/``Optional[...]`` in order (None dropped);
    None for a field that is not a node field."""
    text = ast.unparse(annotation)
    if text.startswith("Annotated["):
        return node_classes(annotation.slice.elts[0])
    if isinstance(annotation, ast.Name) and annotation.id.startswith("vtkMRML"):
        return [annotation.id]
    if isinstance(annotation, ast.Subscript) and ast.unparse(annotation.value) in ("Union", "typing.Union",
                                                                                    "Optional", "typing.Optional"):
        elts = annotation.slice.elts if isinstance(annotation.slice, ast.Tuple) else [annotation.slice]
        names = [ast.unparse(e) for e in elts]
        classes = [n for n in names if n != "None"]
        if classes and all(n.startswith("vtkMRML") for n in classes):
            return classes
    return None


def field_annotations() -> dict[str, ast.expr]:
    for node in module_tree().body:
        if isinstance(node, ast.ClassDef) and node.name == "DDICSlicerParameterNode":
            return {item.target.id: item.annotation for item in node.body if isinstance(item, ast.AnnAssign)}
    raise AssertionError("DDICSlicerParameterNode not found")


def field_types() -> dict[str, tuple[str, str]]:
    """field → (base type, full annotation text) of DDICSlicerParameterNode."""
    out = {}
    for name, annotation in field_annotations().items():
        text = ast.unparse(annotation)
        base = ast.unparse(annotation.slice.elts[0]) if text.startswith("Annotated[") else text
        out[name] = ("node" if node_classes(annotation) else base, text)
    return out


def test_bound_widgets_are_bindable_in_slicer_5_10():
    widgets, types = ui_widgets(), field_types()
    for widget, field in ui_bindings().items():
        cls = widgets[widget]
        base, text = types[field]
        assert cls in BINDABLE, f"{widget} ({cls}) cannot be bound by the parameter node wrapper"
        assert base in BINDABLE[cls], f"{widget} ({cls}) cannot hold {field}: {text}"
        if cls == "QComboBox":
            assert "Choice(" in text, f"{field} is bound to a combo box and needs a Choice annotation"


def ui_node_types() -> dict[str, list[str]]:
    """widget name → the nodeTypes string list of each qMRMLNodeComboBox in the .ui."""
    root = ET.parse(UI_FILE).getroot()
    out = {}
    for w in root.iter("widget"):
        if w.get("class") == "qMRMLNodeComboBox":
            prop = next((p for p in w.findall("property") if p.get("name") == "nodeTypes"), None)
            out[w.get("name")] = [s.text for s in prop.iter("string")] if prop is not None else []
    return out


@needs_api
def test_bound_node_fields_are_concrete_and_match_the_ui_node_types():
    """Break 1. guiConnectors.py qMRMLNodeComboBoxToNodeConnector.__init__ sets ``widget.nodeTypes =
    getNodeTypes(datatype)``, and parameterNodeWrapper/util.py getNodeTypes calls ``cls().GetClassName()``
    for each class, which raises for an abstract (``[no-New]``) class such as vtkMRMLVolumeNode, so the
    panel's setup() would abort. Every class must be concrete, and the .ui's nodeTypes must be what the
    connector writes (otherwise the .ui lies about what the selector shows)."""
    a = api()
    annotations, node_types = field_annotations(), ui_node_types()
    checked = 0
    for widget, field in ui_bindings().items():
        if widget not in node_types:
            continue
        classes = node_classes(annotations[field])
        assert classes, f"{widget} is a node selector but {field} is not a node field"
        for cls in classes:
            line = next((line for line in a._lines(API_DIR / "vtk-classes.txt") if line.startswith(f"{cls} :")), "")
            assert line, f"{cls} ({field}) is not a Slicer class"
            assert "[no-New]" not in line, f"{field}: {cls} is abstract; getNodeTypes cannot instantiate it"
        assert node_types[widget] == classes, f"{widget}: .ui nodeTypes {node_types[widget]} != {classes}"
        checked += 1
    assert checked == len(node_types) >= 4


def test_node_field_parser_sees_unions_and_abstract_classes():
    """The check above can fail: an abstract single class and a Union are both recognised."""
    def parse(text):
        return node_classes(ast.parse(text, mode="eval").body)

    assert parse("vtkMRMLVolumeNode") == ["vtkMRMLVolumeNode"]
    assert parse("Union[vtkMRMLScalarVolumeNode, vtkMRMLVectorVolumeNode, None]") == [
        "vtkMRMLScalarVolumeNode", "vtkMRMLVectorVolumeNode"]
    assert parse("Optional[vtkMRMLTableNode]") == ["vtkMRMLTableNode"]
    assert parse("Annotated[str, Choice(['a'])]") is None and parse("Union[int, None]") is None


def test_option_choices_come_from_the_engine():
    """One source of truth: the panel offers the engine's methods, solvers, step limits and defaults."""
    from ddic.diffusion.constants import MIN_STEPS, NUM_TRAIN_TIMESTEPS
    from ddic.segment.backend import BACKENDS
    from ddic.translate.options import METHODS, SOLVERS, TranslateOptions
    from ddic.translate.placement import ANTERIOR_CHOICES

    source = MODULE_FILE.read_text(encoding="utf-8")
    texts = {name: ast.unparse(annotation) for name, annotation in field_annotations().items()}
    assert texts["method"] == "Annotated[str, Choice(list(METHODS))]"
    assert texts["solver"] == "Annotated[str, Choice(list(SOLVERS))]"
    assert texts["steps"] == "Annotated[int, WithinRange(MIN_STEPS, NUM_TRAIN_TIMESTEPS)]"
    assert texts["anterior"] == "Annotated[str, Choice(list(ANTERIOR_CHOICES))]"
    for name in ("METHODS", "SOLVERS", "MIN_STEPS", "NUM_TRAIN_TIMESTEPS", "ANTERIOR_CHOICES", "TranslateOptions"):
        assert re.search(rf"^from ddic\.[\w.]+ import .*\b{name}\b", source, re.M), f"{name} is not imported"
    for copy in ("MAX_STEPS", "PROTOCOL_VERSION = ", "METHODS = ", "ANTERIOR_CHOICES = ", "SOLVERS = "):
        for path in SLICER_FILES:
            assert copy not in path.read_text(encoding="utf-8"), f"{path.name} keeps its own {copy.strip(' =')}"
    panel_backends = next(ast.literal_eval(n.value) for n in module_tree().body if isinstance(n, ast.Assign)
                          and [getattr(t, "id", "") for t in n.targets] == ["BACKENDS"])
    assert panel_backends == BACKENDS  # kept as a literal: importing the segment package would load scipy
    assert "DEFAULTS = TranslateOptions()" in source and TranslateOptions().steps >= MIN_STEPS
    root = ET.parse(UI_FILE).getroot()
    steps = next(w for w in root.iter("widget") if w.get("name") == "stepsSpinBox")
    limits = {p.get("name"): int(p.findtext("number")) for p in steps.findall("property") if p.findtext("number")}
    assert (limits["minimum"], limits["maximum"]) == (MIN_STEPS, NUM_TRAIN_TIMESTEPS)
    assert set(METHODS) and set(SOLVERS) and set(ANTERIOR_CHOICES) == {"auto", "right", "left"}


@needs_api
def test_ui_custom_widgets_exist_in_slicer():
    root = ET.parse(UI_FILE).getroot()
    declared = {c.findtext("class"): c.findtext("extends") for c in root.iter("customwidget")}
    a = api()
    for cls in set(ui_widgets().values()):
        if cls.startswith(("q", "ctk")):
            assert cls in declared, f"{cls} is used but not declared in <customwidgets>"
            assert cls in a.qt_classes, f"{cls} is not a Slicer/CTK widget class"
            assert "[py=" in a.qt_classes[cls] and "instance-only" not in a.qt_classes[cls], cls
    for w in root.iter("widget"):
        cls = w.get("class")
        for p in w.findall("property"):
            name = p.get("name")
            if p.get("stdset") == "0" or not cls.startswith(("q", "ctk")):
                continue
            assert a.has_member(cls, name) is not False, f"{cls} {w.get('name')} has no property {name!r}"


def test_ui_loads_with_quiloader_offscreen():
    """The issue's wish: load the .ui with PySide6's QUiLoader (custom classes as their declared bases)."""
    pytest.importorskip("PySide6.QtUiTools", reason="PySide6 not installed (the XML checks above still run)")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice
    from PySide6.QtUiTools import QUiLoader
    from PySide6.QtWidgets import QApplication, QWidget

    root = ET.parse(UI_FILE).getroot()
    bases = {c.findtext("class"): c.findtext("extends") for c in root.iter("customwidget")}

    def qt_base(cls):
        while cls in bases:
            cls = bases[cls]
        return cls

    for w in root.iter("widget"):
        w.set("class", qt_base(w.get("class")))
    root.remove(root.find("customwidgets"))
    root.remove(root.find("connections"))  # mrmlSceneChanged exists only on the real qMRMLWidget
    app = QApplication.instance() or QApplication([])
    buffer = QBuffer()
    buffer.setData(QByteArray(ET.tostring(root)))
    buffer.open(QIODevice.ReadOnly)
    loader = QUiLoader()
    widget = loader.load(buffer)
    assert widget is not None, loader.errorString()
    loaded = {c.objectName(): c for c in widget.findChildren(QWidget)}
    assert set(ui_widgets()) - {"DDICSlicer"} <= set(loaded)
    assert loaded["applyButton"].text() == "Translate" and loaded["stepsSpinBox"].maximum() == 1000
    assert loaded["inputSelector"].property("SlicerParameterName") == "inputVolume"
    widget.deleteLater()
    app.processEvents()


# --- packaging ----------------------------------------------------------------------------------------------

def cmake_list(text: str, variable: str) -> list[str]:
    match = re.search(r"set\(\s*" + variable + r"\s+(.*?)\)", text, re.DOTALL)
    assert match, f"{variable} not set"
    return [t.replace("${MODULE_NAME}", "DDICSlicer") for t in match.group(1).split() if not t.startswith("#")]


def test_every_module_file_is_in_cmake():
    text = (MODULE_DIR / "CMakeLists.txt").read_text(encoding="utf-8")
    scripts = cmake_list(text, "MODULE_PYTHON_SCRIPTS") + cmake_list(text, "DDIC_ENGINE_SCRIPTS")
    resources = cmake_list(text, "MODULE_PYTHON_RESOURCES")
    on_disk = {p.relative_to(MODULE_DIR).as_posix() for p in MODULE_DIR.rglob("*.py") if "__pycache__" not in p.parts}
    assert on_disk - set(scripts) == set(), f"not listed in the CMake script lists: {sorted(on_disk - set(scripts))}"
    assert set(scripts) - on_disk == set(), f"listed but missing: {sorted(set(scripts) - on_disk)}"
    # the engine ships inside the module folder (see the comment in the CMake file)
    assert "list(APPEND MODULE_PYTHON_SCRIPTS ${DDIC_ENGINE_SCRIPTS})" in text
    resource_files = {p.relative_to(MODULE_DIR).as_posix()
                      for p in (MODULE_DIR / "Resources").rglob("*") if p.is_file()}
    assert resource_files == set(resources), (resource_files, resources)
    assert "WITH_GENERIC_TESTS" in text and "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text


def test_icon_is_a_128_px_png():
    data = (MODULE_DIR / "Resources" / "Icons" / "DDICSlicer.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (128, 128)


def extension_metadata() -> dict:
    text = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    values = dict(re.findall(r'set\(EXTENSION_(\w+)\s+"([^"]*)"\)', text))
    values["project"] = re.search(r"project\((\w+)\)", text).group(1)
    values["_text"] = text
    return values


def s4ext() -> dict:
    values = {}
    for line in (REPO / "DDICSlicer.s4ext").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            values[key] = value.strip()
    return values


REQUIRED_CMAKE = ("HOMEPAGE", "CATEGORY", "CONTRIBUTORS", "DESCRIPTION", "ICONURL", "SCREENSHOTURLS", "DEPENDS")
REQUIRED_S4EXT = ("scm", "scmurl", "scmrevision", "depends", "homepage", "category", "contributors", "iconurl",
                  "description", "screenshoturls", "enabled", "build_subdirectory")
ACCEPTED_CATEGORIES = {"Ultrasound", "Image Synthesis", "Segmentation", "Quantification", "Utilities"}
SCHEMA_PROPERTIES = {"$schema": str, "category": str, "scm_url": str, "scm_revision": str, "scm_type": str,
                     "build_dependencies": list, "build_subdirectory": str, "enabled": bool, "tier": int}


def test_cmake_metadata():
    meta = extension_metadata()
    for key in REQUIRED_CMAKE:
        assert meta.get(key), f"EXTENSION_{key} missing or empty"
    assert meta["project"] == "DDICSlicer" and not meta["project"].startswith("Slicer")
    assert meta["ICONURL"].startswith("https://raw.githubusercontent.com/") and meta["ICONURL"].endswith(".png")
    assert meta["DEPENDS"] == "PyTorch" and meta["CATEGORY"] in ACCEPTED_CATEGORIES
    text = meta["_text"]
    order = [text.index(s) for s in ("find_package(Slicer REQUIRED)", "include(${Slicer_USE_FILE})",
                                     "add_subdirectory(DDICSlicer)", "${Slicer_EXTENSION_GENERATE_CONFIG}",
                                     "${Slicer_EXTENSION_CPACK}")]
    assert order == sorted(order)


def test_s4ext_agrees_with_cmake():
    meta, desc = extension_metadata(), s4ext()
    for key in REQUIRED_S4EXT:
        assert desc.get(key), f"{key} missing from DDICSlicer.s4ext"
    for key in ("homepage", "category", "contributors", "iconurl", "description", "screenshoturls"):
        assert desc[key] == meta[key.upper()], key
    assert desc["depends"] == meta["DEPENDS"] and desc["scm"] == "git"
    assert "&" not in "".join(desc.values())  # no URL query parameters (spec)


def test_catalog_entry_matches_schema_and_cmake():
    path = REPO / "DDICSlicer.json"
    raw = path.read_bytes()
    assert b"\r" not in raw, "LF line endings only"
    entry = json.loads(raw)
    assert path.stem == extension_metadata()["project"]
    assert set(entry) <= set(SCHEMA_PROPERTIES), f"unknown keys: {set(entry) - set(SCHEMA_PROPERTIES)}"
    for key in ("$schema", "category", "scm_url"):
        assert key in entry, key
    for key, value in entry.items():
        assert isinstance(value, SCHEMA_PROPERTIES[key]), key
    assert entry["$schema"].endswith("slicer-extension-catalog-entry-schema-v1.0.1.json#")
    assert 1 <= entry.get("tier", 1) <= 5 and entry.get("scm_type", "git") in ("git", "local")
    meta, desc = extension_metadata(), s4ext()
    assert entry["build_dependencies"] == meta["DEPENDS"].split()
    assert entry["category"] == meta["CATEGORY"] == desc["category"]
    assert entry["scm_url"] == desc["scmurl"] and entry["scm_url"].startswith(("https://", "git://"))
    assert entry["scm_revision"] == desc["scmrevision"]
    assert entry.get("build_subdirectory", ".") == desc["build_subdirectory"]


def test_sample_data_checksums_match_the_shipped_files():
    import hashlib
    import sys

    sys.path.insert(0, str(MODULE_DIR))
    from DDICSlicerLib import sampledata

    folder = sampledata.sample_folder(MODULE_DIR)
    for _name, file_name, _node, digest, thumbnail in sampledata.SAMPLES:
        assert hashlib.sha256((folder / file_name).read_bytes()).hexdigest() == digest, file_name
        assert (folder / thumbnail).is_file()
