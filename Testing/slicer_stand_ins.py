"""Numpy stand-ins for the MRML, VTK and ``slicer.util`` pieces the panel's helpers use, with Slicer's semantics.

Slicer cannot run here, so the helpers in ``DDICSlicer/DDICSlicerLib`` are exercised against these
stand-ins, which reproduce what Slicer's own source does (Slicer/Slicer at 583e9b37d5; file and function
named at each class). They are deliberately small: a behaviour the helpers rely on is modelled, anything
else raises ``AttributeError`` so a helper that starts using more of the API is noticed.

Install them with :func:`install` (a pytest ``monkeypatch``): it puts a ``slicer`` and a ``vtk`` module
into ``sys.modules``; the helpers import both inside their functions.
"""

from __future__ import annotations

import itertools
import sys
import types

import numpy as np


# --- VTK ------------------------------------------------------------------------------------------------------

class Matrix4x4:
    """vtk.vtkMatrix4x4: row-major 4×4, ``MultiplyPoint`` of a homogeneous point."""

    def __init__(self, array=None):
        self.a = np.eye(4) if array is None else np.array(array, dtype=float).reshape(4, 4)

    def GetElement(self, r, c):
        return float(self.a[r, c])

    def SetElement(self, r, c, v):
        self.a[r, c] = v

    def DeepCopy(self, other):
        self.a = np.array(other.a if isinstance(other, Matrix4x4) else other, dtype=float).reshape(4, 4)

    def MultiplyPoint(self, p):
        return tuple(float(v) for v in self.a @ np.asarray(p, dtype=float))


class GeneralTransform:
    """vtk.vtkGeneralTransform holding one linear transform (all that linear MRML transforms give)."""

    def __init__(self):
        self.a = np.eye(4)

    def TransformPoint(self, p):
        return tuple(float(v) for v in (self.a @ np.array([*p[:3], 1.0]))[:3])


class Points:
    """vtk.vtkPoints."""

    def __init__(self):
        self.points = []

    def InsertNextPoint(self, p):
        self.points.append(np.asarray(p, dtype=float)[:3].copy())
        return len(self.points) - 1

    def GetNumberOfPoints(self):
        return len(self.points)

    def GetPoint(self, i):
        return tuple(self.points[i])


# --- MRML -----------------------------------------------------------------------------------------------------

_ids = itertools.count(1)


class Node:
    """vtkMRMLNode basics: id, name, class checks; ``scene`` is the scene that holds the node, if any."""

    className = "vtkMRMLNode"
    bases = ("vtkMRMLNode",)

    def __init__(self, name="node"):
        self.id = f"{self.className}{next(_ids)}"
        self.name = name
        self.scene = None
        self.calls = []  # recorded method calls that matter to the tests (storage, saving)

    def GetID(self):
        return self.id

    def GetName(self):
        return self.name

    def SetName(self, name):
        self.name = name

    def GetClassName(self):
        return self.className

    def IsA(self, cls):
        return cls in self.bases

    def GetMTime(self):
        return 1

    def GetScene(self):
        return self.scene

    # Libs/MRML/Core/vtkMRMLNode.cxx: string attributes, written into the scene file, copied by CopyContent
    def SetAttribute(self, name, value):
        attributes = self.__dict__.setdefault("attributes", {})
        if value is None:
            attributes.pop(name, None)
        else:
            attributes[name] = str(value)

    def GetAttribute(self, name):
        return self.__dict__.get("attributes", {}).get(name)


class TransformNode(Node):
    """A linear vtkMRMLTransformNode: ``to_parent`` (4×4) under an optional parent transform."""

    className = "vtkMRMLLinearTransformNode"
    bases = ("vtkMRMLNode", "vtkMRMLTransformNode", "vtkMRMLLinearTransformNode")

    def __init__(self, to_parent, parent=None):
        super().__init__("transform")
        self.to_parent = np.asarray(to_parent, dtype=float)
        self.parent = parent

    def GetParentTransformNode(self):
        return self.parent

    def to_world(self) -> np.ndarray:
        return (self.parent.to_world() if self.parent is not None else np.eye(4)) @ self.to_parent

    @staticmethod
    def GetTransformBetweenNodes(source, target, transform):
        """Libs/MRML/Core/vtkMRMLTransformNode.cxx GetTransformBetweenNodes(source, target, out): maps
        coordinates of nodes under ``source`` to those of nodes under ``target``; None means world."""
        to_world = source.to_world() if source is not None else np.eye(4)
        from_world = np.linalg.inv(target.to_world()) if target is not None else np.eye(4)
        transform.a = from_world @ to_world


def to_world_of(node) -> np.ndarray:
    parent = node.GetParentTransformNode()
    return parent.to_world() if parent is not None else np.eye(4)


class ImageData:
    def __init__(self, shape):
        self.shape = shape  # numpy (k, j, i[, c])

    def GetDimensions(self):
        return (self.shape[2], self.shape[1], self.shape[0])


class StorageNode(Node):
    """The storage-node part of a vtkMRMLStorableNode: which file a scene save would use."""

    className = "vtkMRMLVolumeArchetypeStorageNode"
    bases = ("vtkMRMLNode", "vtkMRMLStorageNode", "vtkMRMLVolumeArchetypeStorageNode")
    written = []  # (path, pixels, ijk_to_ras) of every WriteData, for the tests

    def __init__(self):
        super().__init__("storage")
        self.file_name = None
        self.use_compression = True

    def SetFileName(self, name):
        self.calls.append(("SetFileName", str(name)))
        self.file_name = str(name)

    def GetFileName(self):
        return self.file_name

    def UseCompressionOff(self):
        self.use_compression = False

    def SetUseCompression(self, value):
        self.use_compression = bool(value)

    def WriteData(self, node):
        """Libs/MRML/Core/vtkMRMLStorageNode.cxx WriteData: writes the referenced node's data; a storage
        node outside any scene works (TotalSegmentator processVolume, MONAIAuto3DSeg write this way)."""
        import SimpleITK as sitk

        pixels = np.asarray(node.array)
        image = sitk.GetImageFromArray(pixels.astype(np.float32))
        ijk_to_ras = node.ijk_to_ras()
        spacing = np.linalg.norm(ijk_to_ras[:3, :3], axis=0)
        image.SetSpacing([float(s) for s in spacing])
        sitk.WriteImage(image, self.file_name)
        StorageNode.written.append((self.file_name, pixels.copy(), ijk_to_ras.copy()))
        return 1


class VolumeNode(Node):
    """vtkMRMLScalarVolumeNode: Libs/MRML/Core/vtkMRMLVolumeNode.cxx GetIJKToRASMatrix builds
    IJK→RAS = [directions · diag(spacing) | origin]; GetRASToIJKMatrix is its inverse. ``array`` is what
    ``slicer.util.arrayFromVolume`` returns: (k, j, i) = (1, rows, columns)."""

    className = "vtkMRMLScalarVolumeNode"
    bases = ("vtkMRMLNode", "vtkMRMLStorableNode", "vtkMRMLVolumeNode", "vtkMRMLScalarVolumeNode")

    def __init__(self, array=None, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), directions=None,
                 parent=None, name="volume"):
        super().__init__(name)
        self.array = None if array is None else np.asarray(array)
        self.spacing = np.asarray(spacing, dtype=float)
        self.origin = np.asarray(origin, dtype=float)
        self.directions = np.eye(3) if directions is None else np.asarray(directions, dtype=float)
        self.parent = parent
        self.storage = None
        self.display = None

    def ijk_to_ras(self) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3] = self.directions * self.spacing
        m[:3, 3] = self.origin
        return m

    def GetIJKToRASMatrix(self, out):
        out.a = self.ijk_to_ras()

    def GetRASToIJKMatrix(self, out):
        out.a = np.linalg.inv(self.ijk_to_ras())

    def GetIJKToRASDirectionMatrix(self, out):
        out.a = np.eye(4)
        out.a[:3, :3] = self.directions

    def SetIJKToRASMatrix(self, m):
        a = m.a if isinstance(m, Matrix4x4) else np.asarray(m)
        self.spacing = np.linalg.norm(a[:3, :3], axis=0)
        self.directions = a[:3, :3] / self.spacing
        self.origin = a[:3, 3].copy()

    def CopyOrientation(self, other):
        self.SetIJKToRASMatrix(Matrix4x4(other.ijk_to_ras()))

    def GetSpacing(self):
        return tuple(self.spacing)

    def GetOrigin(self):
        return tuple(self.origin)

    def GetParentTransformNode(self):
        return self.parent

    def SetAndObserveTransformNodeID(self, node_id):
        self.calls.append(("SetAndObserveTransformNodeID", node_id))

    def GetImageData(self):
        return None if self.array is None else ImageData(self.array.shape)

    # storable-node part (Libs/MRML/Core/vtkMRMLStorableNode.cxx)
    def GetStorageNode(self):
        return self.storage

    def AddDefaultStorageNode(self, *args):
        self.calls.append(("AddDefaultStorageNode",))
        self.storage = StorageNode()

    def SetAndObserveStorageNodeID(self, node_id):
        self.calls.append(("SetAndObserveStorageNodeID", node_id))

    def GetModifiedSinceRead(self):
        """vtkMRMLStorableNode::GetModifiedSinceRead: newer than its storage nodes' stored time; with no
        storage node the stored time is zero, so a node made from an array counts as modified (a scene
        save writes it)."""
        return self.storage is None or self.storage.GetFileName() is None

    def CreateDefaultDisplayNodes(self):
        self.display = DisplayNode()

    def GetDisplayNode(self):
        return self.display

    def HideFromEditorsOn(self):
        pass


class VectorVolumeNode(VolumeNode):
    className = "vtkMRMLVectorVolumeNode"
    bases = VolumeNode.bases + ("vtkMRMLTensorVolumeNode", "vtkMRMLVectorVolumeNode")


class DisplayNode:
    def __init__(self):
        self.color_node = None

    def SetAndObserveColorNodeID(self, node_id):
        self.color_node = node_id

    def SetSelectedColor(self, *rgb):
        pass

    def SetPointLabelsVisibility(self, value):
        pass


class MarkupsNode(Node):
    """vtkMRMLMarkupsNode control points: node coordinates + position status (vtkMRMLMarkupsNode.h:
    PositionUndefined, PositionPreview, PositionDefined, PositionMissing); world = parent transform · node."""

    className = "vtkMRMLMarkupsFiducialNode"
    bases = ("vtkMRMLNode", "vtkMRMLMarkupsNode", "vtkMRMLMarkupsFiducialNode")
    PositionUndefined, PositionPreview, PositionDefined, PositionMissing = range(4)

    def __init__(self, points=(), statuses=None, parent=None, name="points"):
        super().__init__(name)
        self.points = [np.asarray(p, dtype=float) for p in points]
        self.statuses = list(statuses) if statuses is not None else [self.PositionDefined] * len(self.points)
        self.parent = parent
        self.locked = False

    def GetParentTransformNode(self):
        return self.parent

    def GetNumberOfControlPoints(self):
        return len(self.points)

    def GetNumberOfDefinedControlPoints(self, include_preview=False):
        ok = {self.PositionDefined} | ({self.PositionPreview} if include_preview else set())
        return sum(s in ok for s in self.statuses)

    def GetNthControlPointPositionStatus(self, i):
        return self.statuses[i]

    def GetNthControlPointPositionWorld(self, i, out=None):
        world = (to_world_of(self) @ np.array([*self.points[i], 1.0]))[:3]
        if out is not None:
            out[:] = world
        return tuple(world)

    def SetControlPointPositionsWorld(self, points):
        inv = np.linalg.inv(to_world_of(self))
        self.points = [(inv @ np.array([*points.GetPoint(i), 1.0]))[:3] for i in range(points.GetNumberOfPoints())]
        self.statuses = [self.PositionDefined] * len(self.points)

    def SetLocked(self, value):
        self.locked = bool(value)

    def RemoveAllControlPoints(self):
        self.points, self.statuses = [], []
        self.labels = []

    def AddControlPointWorld(self, x, y, z, label=""):
        """vtkMRMLMarkupsNode::AddControlPointWorld(x, y, z, label): a defined point given in world coordinates."""
        inv = np.linalg.inv(to_world_of(self))
        self.points.append((inv @ np.array([x, y, z, 1.0]))[:3])
        self.statuses.append(self.PositionDefined)
        self.__dict__.setdefault("labels", []).append(label)
        return len(self.points) - 1

    def CreateDefaultDisplayNodes(self):
        self.display = DisplayNode()

    def GetDisplayNode(self):
        return getattr(self, "display", None)


class ClosedCurveNode(MarkupsNode):
    className = "vtkMRMLMarkupsClosedCurveNode"
    bases = ("vtkMRMLNode", "vtkMRMLMarkupsNode", "vtkMRMLMarkupsCurveNode", "vtkMRMLMarkupsClosedCurveNode")


class ROINode(MarkupsNode):
    """vtkMRMLMarkupsROINode (Libs/MRML/Core/vtkMRMLMarkupsROINode.cxx):

    * ObjectToNode = [axes | centre] (GetCenter returns its translation column, GetCenter());
    * ObjectToWorld = NodeToWorld · ObjectToNode (UpdateObjectToWorldMatrix, GenerateOrthogonalMatrix),
      so it already contains the centre;
    * the box is a cube of side ``Size`` centred on the object origin, mapped by ObjectToWorld
      (CreateROIBoxPolyDataWorld: vtkCubeSource → ObjectToWorld);
    * a finished box ROI keeps one defined control point at its centre (UpdateControlPointsFromBoxROI).
    """

    className = "vtkMRMLMarkupsROINode"
    bases = ("vtkMRMLNode", "vtkMRMLMarkupsNode", "vtkMRMLMarkupsROINode")

    def __init__(self, center=(0, 0, 0), size=(1, 1, 1), axes=None, parent=None, name="roi", statuses=None):
        self.center = np.asarray(center, dtype=float)
        self.axes = np.eye(3) if axes is None else np.asarray(axes, dtype=float)
        self.size = np.asarray(size, dtype=float)
        super().__init__([self.center], statuses=statuses, parent=parent, name=name)

    def object_to_node(self) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3] = self.axes
        m[:3, 3] = self.center
        return m

    def GetCenter(self, out):
        out[:] = self.object_to_node()[:3, 3]

    def GetSize(self, out):
        out[:] = self.size

    def GetObjectToNodeMatrix(self):
        """The node's own matrix (vtkMRMLMarkupsROINode::GetObjectToNodeMatrix returns its member, observed):
        a DeepCopy into it sets the axes and the centre."""
        roi = self

        class Live(Matrix4x4):
            def DeepCopy(self, other):
                super().DeepCopy(other)
                roi.axes, roi.center = self.a[:3, :3].copy(), self.a[:3, 3].copy()
                roi._centre_point()

        return Live(self.object_to_node())

    def GetObjectToWorldMatrix(self):
        return Matrix4x4(to_world_of(self) @ self.object_to_node())

    def _centre_point(self):
        """UpdateControlPointsFromBoxROI: one defined control point at the centre (when the size is not zero)."""
        if np.linalg.norm(self.size) > 0:
            self.points, self.statuses = [self.center.copy()], [self.PositionDefined]

    def SetCenter(self, *center):
        self.center = np.asarray(center[0] if len(center) == 1 else center, dtype=float).copy()
        self._centre_point()

    def SetSize(self, *size):
        self.size = np.asarray(size[0] if len(size) == 1 else size, dtype=float).copy()
        self._centre_point()

    def SetAndObserveTransformNodeID(self, node_id):
        self.parent = self.scene.GetNodeByID(node_id) if node_id and self.scene is not None else None


class SequenceNode(Node):
    """vtkMRMLSequenceNode: data nodes live in the sequence's own scene (Libs/MRML/Core/vtkMRMLSequenceNode.cxx
    SetDataNodeAtValue → DeepCopyNodeToScene(node, SequenceScene)), not in the main scene."""

    className = "vtkMRMLSequenceNode"
    bases = ("vtkMRMLNode", "vtkMRMLStorableNode", "vtkMRMLSequenceNode")

    def __init__(self, name="sequence", index_name="time", index_unit="s"):
        super().__init__(name)
        self.entries = []  # (index value, node)
        self.index_name, self.index_unit = index_name, index_unit
        self.sequence_scene = Scene()

    def SetDataNodeAtValue(self, node, value):
        copy = VolumeNode(np.array(node.array), name=node.name)
        copy.SetIJKToRASMatrix(Matrix4x4(node.ijk_to_ras()))
        copy.attributes = dict(getattr(node, "attributes", {}))  # DeepCopyNodeToScene → CopyContent
        copy.scene = self.sequence_scene
        self.entries.append((str(value), copy))
        return copy

    def GetNumberOfDataNodes(self):
        return len(self.entries)

    def GetNthDataNode(self, i):
        return self.entries[i][1]

    def GetNthIndexValue(self, i):
        return self.entries[i][0]

    def GetIndexName(self):
        return self.index_name

    def GetIndexUnit(self):
        return self.index_unit

    def SetIndexName(self, name):
        self.index_name = name

    def SetIndexUnit(self, unit):
        self.index_unit = unit


class SequenceBrowserNode(Node):
    """vtkMRMLSequenceBrowserNode + the Sequences logic's proxy update: selecting an item copies that
    item's data node into the proxy node (vtkSlicerSequencesLogic::ProcessMRMLNodesEvents → Modified →
    UpdateProxyNodesFromSequences, synchronous)."""

    className = "vtkMRMLSequenceBrowserNode"
    bases = ("vtkMRMLNode", "vtkMRMLSequenceBrowserNode")

    def __init__(self, master: SequenceNode, proxy: VolumeNode, selected=0):
        super().__init__("browser")
        self.sequences = {master.id: (master, proxy)}
        self.master = master
        self.selected = selected
        self.playback = False
        self.save_changes = {}
        self.SetSelectedItemNumber(selected)

    def GetNumberOfItems(self):
        return self.master.GetNumberOfDataNodes()

    def GetSelectedItemNumber(self):
        return self.selected

    def SetSelectedItemNumber(self, i):
        self.calls.append(("SetSelectedItemNumber", i))
        self.selected = i
        for sequence, proxy in self.sequences.values():
            if proxy is not None and i < sequence.GetNumberOfDataNodes():
                item = sequence.GetNthDataNode(i)
                proxy.array = np.array(item.array)
                proxy.attributes = dict(getattr(item, "attributes", {}))  # CopyContent replaces them
                proxy.SetIJKToRASMatrix(Matrix4x4(item.ijk_to_ras()))

    def GetPlaybackActive(self):
        return self.playback

    def SetPlaybackActive(self, value):
        self.playback = bool(value)

    def GetMasterSequenceNode(self):
        return self.master

    def GetSequenceNode(self, proxy):
        for sequence, p in self.sequences.values():
            if p is proxy:
                return sequence
        return None

    def GetProxyNode(self, sequence):
        return self.sequences.get(sequence.id, (None, None))[1]

    def AddSynchronizedSequenceNode(self, sequence):
        proxy = VolumeNode(name=sequence.name)
        self.sequences[sequence.id] = (sequence, proxy)
        self.SetSelectedItemNumber(self.selected)
        return proxy

    def SetSaveChanges(self, sequence, value):
        self.save_changes[sequence.id] = bool(value)


class Scene:
    """vtkMRMLScene: nodes by id; ``AddNewNodeByClass`` creates, names and adds a node."""

    FACTORIES = {"vtkMRMLScalarVolumeNode": VolumeNode, "vtkMRMLMarkupsFiducialNode": MarkupsNode,
                 "vtkMRMLMarkupsClosedCurveNode": ClosedCurveNode, "vtkMRMLSequenceNode": SequenceNode}

    def __init__(self):
        self.nodes = {}

    def AddNewNodeByClass(self, class_name, name=""):
        node = self.FACTORIES[class_name]()
        node.name = name or class_name
        return self.AddNode(node)

    def AddNode(self, node):
        node.scene = self
        self.nodes[node.GetID()] = node
        return node

    def RemoveNode(self, node):
        self.nodes.pop(node.GetID(), None)
        node.scene = None

    def GetNodeByID(self, node_id):
        return self.nodes.get(node_id)

    def GenerateUniqueName(self, name):
        return name


class SubjectHierarchy:
    """vtkMRMLSubjectHierarchyNode: one item per data node, each with a parent folder."""

    def __init__(self):
        self.parents = {}

    @staticmethod
    def GetSubjectHierarchyNode(scene):
        if not hasattr(scene, "hierarchy"):
            scene.hierarchy = SubjectHierarchy()
        return scene.hierarchy

    def GetItemByDataNode(self, node):
        return node.GetID()

    def GetItemParent(self, item):
        return self.parents.get(item, "scene")

    def SetItemParent(self, item, parent):
        self.parents[item] = parent


# --- slicer.util ----------------------------------------------------------------------------------------------

class Util(types.ModuleType):
    """The ``slicer.util`` functions the helpers call, as Base/Python/slicer/util.py defines them."""

    def __init__(self, slicer_module):
        super().__init__("slicer.util")
        self._slicer = slicer_module
        self.saved = []  # saveNode calls
        self.loaded = []  # loadVolume calls

    @staticmethod
    def arrayFromVolume(node):
        return node.array

    @staticmethod
    def arrayFromMarkupsControlPoints(node, world=False):
        """util.py arrayFromMarkupsControlPoints: every control point, whatever its position status."""
        out = np.zeros((node.GetNumberOfControlPoints(), 3))
        for i in range(node.GetNumberOfControlPoints()):
            node.GetNthControlPointPositionWorld(i, out[i])
        return out

    @staticmethod
    def updateVolumeFromArray(node, array):
        """util.py updateVolumeFromArray: a 2D array becomes one slice (k = 1)."""
        array = np.asarray(array)
        node.array = array[np.newaxis] if array.ndim == 2 else array.copy()

    def saveNode(self, node, filename, properties=None):
        """util.py saveNode → qSlicerCoreIOManager → Base/QTGUI/qSlicerNodeWriter.cxx write(): the node is
        looked up by ID in the *main* scene (getNodeByID → mrmlScene()->GetNodeByID); the writer then
        points the node's own storage node at ``filename`` (createAndAddDefaultStorageNode, SetFileName)."""
        self.saved.append((node, str(filename)))
        if self._slicer.mrmlScene.GetNodeByID(node.GetID()) is not node:
            return False
        if node.GetStorageNode() is None:
            node.AddDefaultStorageNode()
        node.GetStorageNode().SetFileName(filename)
        node.GetStorageNode().WriteData(node)
        return True

    def loadVolume(self, path, properties=None):
        self.loaded.append(str(path))
        raise AssertionError("loadVolume is not expected in these helpers")

    class NodeModify:
        def __init__(self, *args):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    class RenderBlocker(NodeModify):
        pass


def install(monkeypatch):
    """Put stand-in ``slicer`` and ``vtk`` modules into ``sys.modules``; returns the ``slicer`` module."""
    slicer = types.ModuleType("slicer")
    slicer.mrmlScene = Scene()
    slicer.util = Util(slicer)
    slicer.vtkMRMLTransformNode = TransformNode
    slicer.vtkMRMLMarkupsNode = MarkupsNode
    slicer.vtkMRMLVolumeArchetypeStorageNode = StorageNode
    slicer.vtkMRMLScalarVolumeNode = VolumeNode
    slicer.vtkMRMLSubjectHierarchyNode = SubjectHierarchy
    vtk = types.ModuleType("vtk")
    vtk.vtkMatrix4x4 = Matrix4x4
    vtk.vtkGeneralTransform = GeneralTransform
    vtk.vtkPoints = Points
    StorageNode.written = []
    monkeypatch.setitem(sys.modules, "slicer", slicer)
    monkeypatch.setitem(sys.modules, "slicer.util", slicer.util)
    monkeypatch.setitem(sys.modules, "vtk", vtk)
    return slicer


# --- geometries used by the tests -----------------------------------------------------------------------------

def rotation(axis, degrees) -> np.ndarray:
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    t = np.radians(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
"""A frame read from an LPS file (NRRD, DICOM): Slicer's IJK→RAS directions are the LPS ones with x, y negated."""


def rigid(rotation_3x3, translation) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = rotation_3x3
    m[:3, 3] = translation
    return m


# --- the scripted-module framework, enough to import DDICSlicer.py and run its logic ----------------------

class Segmentation:
    """vtkSegmentation: segments by id, with names."""

    def __init__(self):
        self.segments = {}  # id → name

    def GetSegmentIdBySegmentName(self, name):
        return next((i for i, n in self.segments.items() if n == name), "")

    def AddEmptySegment(self, segment_id, name, color=None):
        self.segments[segment_id] = name
        return segment_id

    def GetNumberOfSegments(self):
        return len(self.segments)


class SegmentationNode(Node):
    className = "vtkMRMLSegmentationNode"
    bases = ("vtkMRMLNode", "vtkMRMLSegmentationNode")

    def __init__(self, name="segmentation"):
        super().__init__(name)
        self.segmentation = Segmentation()
        self.masks = {}  # segment id → mask written
        self.reference = None

    def GetSegmentation(self):
        return self.segmentation

    def SetReferenceImageGeometryParameterFromVolumeNode(self, node):
        self.reference = node

    def CreateDefaultDisplayNodes(self):
        pass


class _Base:
    def __init__(self, *args, **kwargs):
        pass


class ObservationMixin:
    """slicer.util.VTKObservationMixin."""

    def __init__(self):
        self.observations = []

    def addObserver(self, obj, event, method, *args, **kwargs):
        self.observations.append((obj, event, method))

    def removeObserver(self, obj, event, method):
        self.observations = [o for o in self.observations if o != (obj, event, method)]

    def removeObservers(self, *args):
        self.observations = []


def install_framework(monkeypatch, temp_root):
    """:func:`install` plus what ``DDICSlicer.py`` imports at file scope (slicer.i18n, parameter node wrapper,
    ScriptedLoadableModule, qt, ctk) and the ``slicer.util`` helpers its logic uses. Returns ``slicer``."""
    import tempfile

    slicer = install(monkeypatch)
    Scene.FACTORIES["vtkMRMLSegmentationNode"] = SegmentationNode
    for cls in (VolumeNode, VectorVolumeNode, MarkupsNode, ClosedCurveNode, ROINode, SegmentationNode):
        setattr(slicer, cls.className, cls)
    slicer.vtkMRMLMarkupsFiducialNode = MarkupsNode
    slicer.vtkMRMLVolumeNode = VolumeNode  # abstract in Slicer; here only so that older code can be imported
    slicer.vtkMRMLTableNode = type("vtkMRMLTableNode", (Node,), {"className": "vtkMRMLTableNode"})
    slicer.app = types.SimpleNamespace(testingEnabled=lambda: False, processEvents=lambda: None,
                                       layoutManager=lambda: None, connect=lambda *a: None)
    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    i18n.translate = lambda context, text: text
    wrapper = types.ModuleType("slicer.parameterNodeWrapper")
    wrapper.Choice = lambda values: ("Choice", tuple(values))
    wrapper.WithinRange = lambda low, high: ("WithinRange", low, high)
    wrapper.parameterNodeWrapper = lambda cls: cls
    framework = types.ModuleType("slicer.ScriptedLoadableModule")
    for name in ("ScriptedLoadableModule", "ScriptedLoadableModuleLogic", "ScriptedLoadableModuleTest",
                 "ScriptedLoadableModuleWidget"):
        setattr(framework, name, type(name, (_Base,), {}))
    slicer.util.VTKObservationMixin = ObservationMixin

    def temp_directory(key="__SlicerTemp__", tempDir=None, includeDateTime=True):
        return tempfile.mkdtemp(prefix=f"{key}-", dir=temp_root)

    slicer.util.tempDirectory = temp_directory
    slicer.util.written_segments = []

    def update_segment(mask, node, segment_id, reference):
        node.masks[segment_id] = np.asarray(mask).copy()
        slicer.util.written_segments.append(segment_id)

    slicer.util.updateSegmentBinaryLabelmapFromArray = update_segment
    for name, module in (("slicer.i18n", i18n), ("slicer.parameterNodeWrapper", wrapper),
                         ("slicer.ScriptedLoadableModule", framework), ("qt", types.ModuleType("qt")),
                         ("ctk", types.ModuleType("ctk"))):
        if name.startswith("slicer."):
            setattr(slicer, name.rpartition(".")[2], module)
        monkeypatch.setitem(sys.modules, name, module)
    sys.modules["vtk"].vtkCommand = types.SimpleNamespace(ModifiedEvent=33)
    return slicer


def import_module_file(path, name="DDICSlicer_under_test"):
    """Import ``DDICSlicer.py`` afresh (against the stand-ins now in ``sys.modules``)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
