"""DDICSlicer: fetal-brain ultrasound → pseudo-MRI (DDIC), side by side, segmentation prompts and CNR.

The panel is glue: every number comes from the engine package ``ddic`` beside this file. Translation
and segmentation run in background processes (``PythonSlicer -m ddic translate`` / ``-m ddic.worker``)
so Slicer never freezes, never loads torch itself and can cancel a run by ending its process tree.
Only the standard library, Slicer, Qt, VTK, ctk and numpy are imported at file scope.
"""

import logging
import os
import shutil
import sys
from typing import Annotated

import ctk  # noqa: F401 - Slicer modules conventionally import it; widgets in the .ui are ctk classes
import numpy as np
import qt
import slicer
import vtk
from DDICSlicerLib import process as worker
from DDICSlicerLib.layout import SideBySide
from DDICSlicerLib.segments import NEGATIVE_COLOR, POSITIVE_COLOR, TARGET_NAMES
from DDICSlicerLib.translation import ANTERIOR_CHOICES, MAX_STEPS, METHODS, MIN_STEPS
from slicer import (
    vtkMRMLMarkupsClosedCurveNode,
    vtkMRMLMarkupsFiducialNode,
    vtkMRMLMarkupsROINode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
    vtkMRMLTableNode,
    vtkMRMLVolumeNode,
)
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

SEGMENT_SOURCES = ("Pseudo-MRI", "Ultrasound")
BACKENDS = ("auto", "sam", "classical")
POLL_INTERVAL_MS = 200
logger = logging.getLogger(__name__)
# Parameters kept by code rather than by a widget (the test checks every other field has one in the .ui)
CODE_MANAGED_PARAMETERS = ("usModel", "mriModel", "samModel", "ellipse", "skullPoints", "positivePoints",
                           "negativePoints", "promptBox", "ellipseCurve", "cnrTable")


#
# DDICSlicer
#


class DDICSlicer(ScriptedLoadableModule):
    """Module metadata; the heavy parts load on first use, never here."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("DDIC Ultrasound to MRI")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Ultrasound")]
        self.parent.dependencies = []
        self.parent.contributors = ["DDICSlicer developers"]
        self.parent.helpText = _(
            "Translate a 2D fetal-brain ultrasound frame into a pseudo-MRI with DDIC (dual diffusion imposed "
            "correlation), compare them side by side, segment the lateral ventricles and Sylvian fissures from "
            "point and box prompts, and measure CNR / gCNR in two boxes on both images. "
            "Research software: not a medical device. "
            "See the <a href=\"https://github.com/DDICSlicer/SlicerDDIC\">documentation</a>.")
        self.parent.acknowledgementText = _(
            "DDIC method: Silverstein, Leibowitz, Beloosesky, Azhari. Segment Anything (Meta AI, Apache-2.0) for "
            "interactive segmentation. Built on the 3D Slicer scripted-module template and the PyTorch extension.")
        # citation shown in the module's help (Slicer has no separate citation field)
        self.parent.helpText += _(
            "<p>If you use DDICSlicer, cite the DDIC paper (Silverstein et al.) and, for segmentation, "
            "Kirillov et al., Segment Anything, ICCV 2023.</p>")
        # sample data once the application is up (never at import or in the constructor's own time)
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """Phantom frames in the Sample Data module (offline: shipped with the extension, SHA-256 checked)."""
    from DDICSlicerLib import sampledata

    sampledata.register(os.path.dirname(os.path.abspath(__file__)))


#
# DDICSlicerParameterNode
#


@parameterNodeWrapper
class DDICSlicerParameterNode:
    """Everything the panel shows, stored in the scene so that a saved scene restores the panel."""

    inputVolume: vtkMRMLVolumeNode
    translateAllFrames: bool = False
    pixelSize: Annotated[float, WithinRange(0.0, 10.0)] = 0.0  # 0: use the volume's spacing
    useEllipse: bool = False
    anterior: Annotated[str, Choice(list(ANTERIOR_CHOICES))] = "auto"
    method: Annotated[str, Choice(list(METHODS))] = "ddic"
    steps: Annotated[int, WithinRange(MIN_STEPS, MAX_STEPS)] = 100
    forceCpu: bool = False
    outputVolume: vtkMRMLScalarVolumeNode
    segmentationNode: vtkMRMLSegmentationNode
    target: Annotated[str, Choice(list(TARGET_NAMES))] = TARGET_NAMES[0]
    segmentSource: Annotated[str, Choice(list(SEGMENT_SOURCES))] = SEGMENT_SOURCES[0]
    backend: Annotated[str, Choice(list(BACKENDS))] = "auto"
    cnrRoi: vtkMRMLMarkupsROINode
    cnrBackground: vtkMRMLMarkupsROINode
    # code-managed (CODE_MANAGED_PARAMETERS)
    usModel: str = "ddic-demo-us"
    mriModel: str = "ddic-demo-mri"
    samModel: str = "sam-vit-b"
    ellipse: str = ""  # "cx,cy,a,b,angle" in frame pixels, empty: automatic in the engine
    skullPoints: vtkMRMLMarkupsFiducialNode
    positivePoints: vtkMRMLMarkupsFiducialNode
    negativePoints: vtkMRMLMarkupsFiducialNode
    promptBox: vtkMRMLMarkupsROINode
    ellipseCurve: vtkMRMLMarkupsClosedCurveNode
    cnrTable: vtkMRMLTableNode


#
# DDICSlicerWidget
#


class DDICSlicerWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel: binds the .ui to the parameter node, drives the logic, shows progress and errors."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._dependenciesChecked = False
        self._modelsListed = False
        self.sideBySide = SideBySide()

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/DDICSlicer.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = DDICSlicerLogic()
        self.logic.logCallback = self.addLog

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.detectEllipseButton.connect("clicked(bool)", self.onDetectEllipse)
        self.ui.fitEllipseButton.connect("clicked(bool)", self.onFitEllipse)
        self.ui.sideBySideButton.connect("clicked(bool)", self.onToggleSideBySide)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.onModelChanged)
        self.ui.samModelComboBox.connect("currentIndexChanged(int)", self.onSamModelChanged)
        self.ui.loadModelButton.connect("clicked(bool)", self.onLoadLocalModels)
        self.ui.downloadModelButton.connect("clicked(bool)", self.onDownloadSamModel)
        self.ui.clearModelsButton.connect("clicked(bool)", self.onClearModels)
        self.ui.segmentButton.connect("clicked(bool)", self.onSegment)
        self.ui.clearPromptsButton.connect("clicked(bool)", self.onClearPrompts)
        self.ui.updateCnrButton.connect("clicked(bool)", self.onUpdateCnr)

        self.ui.progressBar.setVisible(False)
        self.ui.logTextEdit.setMaximumBlockCount(2000)  # the process log is capped as well

        self.timer = qt.QTimer()
        self.timer.setInterval(POLL_INTERVAL_MS)
        self.timer.connect("timeout()", self.onTimer)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        """Module closed or Slicer exits: no background process may outlive the panel."""
        self.timer.stop()
        if self.logic:
            self.logic.shutdown()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()
        self.preparePromptWidgets()
        if not self._modelsListed:
            self._modelsListed = True
            self.listModels()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)

    def onSceneStartClose(self, caller, event) -> None:
        if self.logic:
            self.logic.shutdown()
        self.timer.stop()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()
            self.preparePromptWidgets()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            first = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if first:
                self._parameterNode.inputVolume = first

    def preparePromptWidgets(self) -> None:
        """Point lists, box and table are created when the module is first shown, not in setup()."""
        self.logic.ensurePromptNodes(self._parameterNode)
        self.ui.skullPointsPlaceWidget.setCurrentNode(self._parameterNode.skullPoints)
        self.ui.positivePlaceWidget.setCurrentNode(self._parameterNode.positivePoints)
        self.ui.negativePlaceWidget.setCurrentNode(self._parameterNode.negativePoints)
        self.ui.boxPlaceWidget.setCurrentNode(self._parameterNode.promptBox)
        self.ui.cnrTableView.setMRMLTableNode(self._parameterNode.cnrTable)

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
            self.updateButtons()

    # -- state -----------------------------------------------------------------------------------------------
    def updateButtons(self, caller=None, event=None) -> None:
        p = self._parameterNode
        if p is None:
            return
        running = self.logic.translationRunning
        if running:
            self.ui.applyButton.text = _("Cancel")
            self.ui.applyButton.toolTip = _("Stop the translation; nothing is added to the scene.")
            self.ui.applyButton.enabled = True
        else:
            self.ui.applyButton.text = _("Translate")
            self.ui.applyButton.enabled = bool(p.inputVolume)
            self.ui.applyButton.toolTip = (_("Translate the ultrasound frame into a pseudo-MRI.") if p.inputVolume
                                           else _("Select an ultrasound volume first."))
        browser, _sequence = self.logic.sequenceOf(p.inputVolume)
        self.ui.translateAllFramesCheckBox.enabled = browser is not None and not running
        self.ui.estimateLabel.text = self.logic.estimateText(p)
        haveBoth = bool(p.inputVolume and p.outputVolume)
        self.ui.sideBySideButton.enabled = haveBoth
        self.ui.segmentButton.enabled = bool(p.inputVolume) and (p.segmentSource == "Ultrasound" or haveBoth)
        self.ui.updateCnrButton.enabled = bool(haveBoth and p.cnrRoi and p.cnrBackground)
        for widget in (self.ui.inputsCollapsibleButton, self.ui.translationCollapsibleButton):
            widget.enabled = not running

    def addLog(self, text: str) -> None:
        self.ui.logTextEdit.appendPlainText(text)
        logger.info("%s", text)

    def setStatus(self, text: str) -> None:
        self.ui.statusLabel.text = text
        slicer.util.showStatusMessage(text, 3000)

    # -- translation -----------------------------------------------------------------------------------------
    def onApplyButton(self) -> None:
        if self.logic.translationRunning:
            self.logic.cancelTranslation()
            self.setStatus(_("Cancelling…"))
            return
        with slicer.util.tryWithErrorDisplay(_("Failed to start the translation."), waitCursor=True):
            if not self._dependenciesChecked:
                from DDICSlicerLib.dependencies import setup_dependencies

                if not setup_dependencies(ask=True):
                    return
                self._dependenciesChecked = True
            self.ui.logTextEdit.clear()
            self.logic.startTranslation(self._parameterNode)
            self.ui.progressBar.setVisible(True)
            self.ui.progressBar.value = 0
            self.setStatus(_("Translating…"))
            self.timer.start()
        self.updateButtons()

    def onTimer(self) -> None:
        self.logic.pollSegmentation()
        if not self.logic.translationRunning and self.logic.job is None:
            if not self.logic.segmentationBusy:
                self.timer.stop()
            return
        state = self.logic.pollTranslation()
        job = self.logic.job
        if job is not None and state in (worker.RUNNING, worker.CANCELLING):
            done, total, message = job.progress
            self.ui.progressBar.value = int(100 * job.fraction)
            if total:
                self.ui.statusLabel.text = f"{message} ({done}/{total}, {job.elapsed_s:.0f} s)"
            return
        self.onTranslationFinished()

    def onTranslationFinished(self) -> None:
        result = self.logic.lastResult
        self.ui.progressBar.setVisible(False)
        p = self._parameterNode
        if result is None:
            return
        if result.state == worker.SUCCEEDED:
            self.setStatus(result.message())
            if p.outputVolume and p.inputVolume:
                self.sideBySide.show(p.inputVolume, p.outputVolume)
                self.ui.sideBySideButton.checked = True
        elif result.state == worker.CANCELLED:
            self.setStatus(_("Cancelled."))
        elif result.out_of_memory and not p.forceCpu:
            self.setStatus(_("Out of GPU memory."))
            if slicer.util.confirmYesNoDisplay(
                    result.message() + "\n\n" + _("Translate on the CPU instead? ") + self.logic.estimateText(p),
                    windowTitle="DDICSlicer"):
                p.forceCpu = True
                self.onApplyButton()
                return
        else:
            self.setStatus(_("Translation failed."))
            slicer.util.errorDisplay(result.message(), detailedText=self.logic.lastLog, windowTitle="DDICSlicer")
        self.updateButtons()

    # -- head ellipse ----------------------------------------------------------------------------------------
    def onDetectEllipse(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not find the head ellipse."), waitCursor=True):
            detection = self.logic.detectEllipse(self._parameterNode)
            self.setStatus(_("Head found: HC {hc:.0f} mm, confidence {c:.2f}. Tick 'Use ellipse' to accept it.")
                           .format(hc=detection.hc_mm, c=detection.confidence))

    def onFitEllipse(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not fit the head ellipse."), waitCursor=True):
            self.logic.fitEllipse(self._parameterNode)
            self._parameterNode.useEllipse = True
            self.setStatus(_("Ellipse fitted to the skull points and accepted."))

    def onToggleSideBySide(self) -> None:
        p = self._parameterNode
        shown = self.sideBySide.toggle(p.inputVolume, p.outputVolume)
        self.ui.sideBySideButton.checked = shown

    # -- models ----------------------------------------------------------------------------------------------
    def listModels(self) -> None:
        from DDICSlicerLib import models

        try:
            pairs, sams = models.translation_pairs(), models.sam_entries()
        except Exception as exc:  # noqa: BLE001 - a broken manifest must not break the panel; say why
            self.addLog(f"Model list unavailable: {exc}")
            return
        self._pairs = pairs
        self._sams = sams
        with slicer.util.NodeModify(self._parameterNode):
            self.ui.modelComboBox.clear()
            for pair in pairs:
                self.ui.modelComboBox.addItem(pair.title)
            self.ui.samModelComboBox.clear()
            for entry in sams:
                self.ui.samModelComboBox.addItem(f"{entry.title} ({entry.size_text()}, {entry.license})")
            ids = [e.id for e in sams]
            if self._parameterNode.samModel in ids:
                self.ui.samModelComboBox.currentIndex = ids.index(self._parameterNode.samModel)

    def onModelChanged(self, index: int) -> None:
        pairs = getattr(self, "_pairs", [])
        if 0 <= index < len(pairs) and self._parameterNode:
            self._parameterNode.usModel = pairs[index].us
            self._parameterNode.mriModel = pairs[index].mri

    def onSamModelChanged(self, index: int) -> None:
        sams = getattr(self, "_sams", [])
        if 0 <= index < len(sams) and self._parameterNode:
            self._parameterNode.samModel = sams[index].id

    def onLoadLocalModels(self) -> None:
        us = qt.QFileDialog.getExistingDirectory(None, _("Ultrasound model folder (model.json + model.safetensors)"))
        if not us:
            return
        mri = qt.QFileDialog.getExistingDirectory(None, _("MRI model folder (model.json + model.safetensors)"))
        if not mri:
            return
        self._parameterNode.usModel, self._parameterNode.mriModel = us, mri
        label = _("Local: {us} + {mri}").format(us=os.path.basename(us), mri=os.path.basename(mri))
        self.ui.modelComboBox.addItem(label)
        self.ui.modelComboBox.currentIndex = self.ui.modelComboBox.count - 1

    def onDownloadSamModel(self) -> None:
        from DDICSlicerLib import models

        modelId = self._parameterNode.samModel
        with slicer.util.tryWithErrorDisplay(_("Download failed."), waitCursor=False):
            if models.is_available(modelId):
                self.setStatus(_("{m} is already downloaded.").format(m=modelId))
                return
            if not slicer.util.confirmOkCancelDisplay(models.download_consent_text(modelId), windowTitle="DDICSlicer"):
                return
            path = models.download(modelId, parent=slicer.util.mainWindow())
            self.setStatus(_("Downloaded to {p}").format(p=path) if path else _("Download cancelled."))

    def onClearModels(self) -> None:
        from DDICSlicerLib import models

        if not slicer.util.confirmOkCancelDisplay(
                _("Remove every downloaded model from {folder}? Bundled demo models stay.").format(
                    folder=models.cache_folder()), windowTitle="DDICSlicer"):
            return
        with slicer.util.tryWithErrorDisplay(_("Could not remove the downloaded models."), waitCursor=True):
            self.logic.stopSegmentationWorker()  # it may hold a checkpoint open
            removed = models.clear_downloaded()
            self.setStatus(_("Removed {n} file(s).").format(n=len(removed)))

    # -- segmentation and CNR --------------------------------------------------------------------------------
    def onSegment(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Segmentation failed."), waitCursor=True):
            if not self._dependenciesChecked:
                from DDICSlicerLib.dependencies import setup_dependencies

                if not setup_dependencies(ask=True):
                    return
                self._dependenciesChecked = True
            self.logic.segment(self._parameterNode, self.onSegmentationResult)
            self.setStatus(_("Segmenting…"))
            self.timer.start()

    def onSegmentationResult(self, summary: str, error: str) -> None:
        if error:
            self.setStatus(_("Segmentation failed."))
            slicer.util.errorDisplay(error, windowTitle="DDICSlicer")
            return
        self.ui.segmentResultLabel.text = summary
        self.setStatus(summary)

    def onClearPrompts(self) -> None:
        p = self._parameterNode
        for node in (p.positivePoints, p.negativePoints, p.promptBox):
            if node:
                node.RemoveAllControlPoints()

    def onUpdateCnr(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Could not compute the CNR."), waitCursor=True):
            self.logic.observeCnrRois(self._parameterNode, True)
            self.logic.updateCnr(self._parameterNode)


#
# DDICSlicerLogic
#


class DDICSlicerLogic(ScriptedLoadableModuleLogic, VTKObservationMixin):
    """Usable without the widget (scripts, tests): start/poll/cancel translation, segment, measure."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        VTKObservationMixin.__init__(self)
        self.moduleDir = os.path.dirname(os.path.abspath(__file__))
        self.job = None
        self.lastResult = None
        self.lastLog = ""
        self.logCallback = None
        self.segmenter = None
        self.segmentationBusy = False
        self._jobContext = None
        self._maskCounter = 0
        self._cnrObserved = []

    def getParameterNode(self):
        return DDICSlicerParameterNode(super().getParameterNode())

    def log(self, text: str) -> None:
        if self.logCallback:
            self.logCallback(text)
        else:
            logger.info("%s", text)

    # -- helpers ---------------------------------------------------------------------------------------------
    def pythonExecutable(self) -> str:
        """``PythonSlicer`` (Slicer's launcher for its Python) when present, else this interpreter."""
        return shutil.which("PythonSlicer") or sys.executable

    def engineEnvironment(self, forceCpu: bool = False) -> dict:
        from DDICSlicerLib.translation import engine_environment

        return engine_environment(self.moduleDir, forceCpu)

    def sequenceOf(self, volumeNode):
        from DDICSlicerLib.volumes import sequence_of_proxy

        return sequence_of_proxy(volumeNode)

    def estimateText(self, p) -> str:
        from DDICSlicerLib import models
        from DDICSlicerLib.translation import estimate_text, read_model_card

        try:
            path = models.resolve(p.usModel)
        except Exception:  # noqa: BLE001 - unknown model: the estimate is only a hint
            return _("Time estimate unavailable (model not found).")
        frames = 1
        _browser, sequence = self.sequenceOf(p.inputVolume)
        if p.translateAllFrames and sequence is not None:
            frames = sequence.GetNumberOfDataNodes()
        return estimate_text(read_model_card(path), p.method, p.steps, frames)

    def ensurePromptNodes(self, p) -> None:
        """Point lists, box and table the panel uses, created once per scene (kept in the parameter node)."""
        def make(className, name, color):
            node = slicer.mrmlScene.AddNewNodeByClass(className, name)
            node.CreateDefaultDisplayNodes()
            node.GetDisplayNode().SetSelectedColor(*color)
            return node

        with slicer.util.NodeModify(p):
            if not p.skullPoints:
                p.skullPoints = make("vtkMRMLMarkupsFiducialNode", "DDIC skull points", (1.0, 0.85, 0.0))
            if not p.positivePoints:
                p.positivePoints = make("vtkMRMLMarkupsFiducialNode", "DDIC inside points", POSITIVE_COLOR)
            if not p.negativePoints:
                p.negativePoints = make("vtkMRMLMarkupsFiducialNode", "DDIC outside points", NEGATIVE_COLOR)
            if not p.promptBox:
                p.promptBox = make("vtkMRMLMarkupsROINode", "DDIC prompt box", (1.0, 0.85, 0.0))
            if not p.cnrTable:
                p.cnrTable = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLTableNode", "DDIC CNR")

    # -- head ellipse ----------------------------------------------------------------------------------------
    def detectEllipse(self, p):
        from DDICSlicerLib.volumes import detect_ellipse, ellipse_text, show_ellipse

        if not p.inputVolume:
            raise ValueError(_("Select an ultrasound volume first."))
        detection = detect_ellipse(p.inputVolume, p.pixelSize or None)
        p.ellipse = ellipse_text(detection.ellipse)
        p.ellipseCurve = show_ellipse(p.inputVolume, detection.ellipse, p.ellipseCurve)
        return detection

    def fitEllipse(self, p):
        from DDICSlicerLib.volumes import (
            ellipse_text,
            fit_ellipse_to_points,
            show_ellipse,
        )

        ellipse = fit_ellipse_to_points(p.inputVolume, p.skullPoints)
        p.ellipse = ellipse_text(ellipse)
        p.ellipseCurve = show_ellipse(p.inputVolume, ellipse, p.ellipseCurve)
        return ellipse

    # -- translation -----------------------------------------------------------------------------------------
    @property
    def translationRunning(self) -> bool:
        return self.job is not None and self.job.state in (worker.RUNNING, worker.CANCELLING)

    def startTranslation(self, p) -> None:
        """Write the frame(s), start ``ddic translate`` in the background; poll with :meth:`pollTranslation`."""
        from DDICSlicerLib.translation import TranslationJob
        from DDICSlicerLib.volumes import (
            parse_ellipse,
            write_frame,
            write_sequence_frames,
        )

        if self.translationRunning:
            raise RuntimeError(_("A translation is already running."))
        inputNode = p.inputVolume
        if not inputNode or inputNode.GetImageData() is None:
            raise ValueError(_("Select an ultrasound volume with image data."))
        dims = inputNode.GetImageData().GetDimensions()
        if min(dims) != 1:
            raise ValueError(_("The input is a 3D volume ({d}); DDIC translates 2D frames. Use a single frame or "
                               "a sequence of frames.").format(d="×".join(map(str, dims))))
        usModel = str(self._resolveModel(p.usModel))
        mriModel = str(self._resolveModel(p.mriModel))
        tempDir = slicer.util.tempDirectory("DDICSlicer")
        browser, sequence = self.sequenceOf(inputNode)
        allFrames = bool(p.translateAllFrames and sequence is not None)
        if allFrames:
            frames = write_sequence_frames(sequence, os.path.join(tempDir, "frames"))
        else:
            frames = [write_frame(inputNode, os.path.join(tempDir, "frame.nrrd"))]
        job = TranslationJob(frames=frames, us_model=usModel, mri_model=mriModel,
                             out_dir=os.path.join(tempDir, "out"), method=p.method, steps=p.steps,
                             force_cpu=p.forceCpu, anterior=p.anterior, pixel_size_mm=p.pixelSize or None,
                             ellipse=parse_ellipse(p.ellipse) if (p.useEllipse and not allFrames) else None)
        argv = job.command(self.pythonExecutable())
        self.log("Running: " + " ".join(argv))
        self.lastResult, self.lastLog = None, ""
        self.job = worker.WorkerProcess(argv, env=self.engineEnvironment(p.forceCpu), temp_dir=tempDir,
                                        on_log=self.log, on_event=self._onWorkerEvent)
        self._jobContext = {"parameterNode": p, "input": inputNode, "browser": browser, "sequence": sequence,
                            "allFrames": allFrames}
        self.job.start()

    def _onWorkerEvent(self, event: dict) -> None:
        if event.get("event") == "start":
            self.log(f"Translating {event.get('frames')} frame(s) with {event.get('method')}, "
                     f"N = {event.get('steps')}, on {event.get('device')}")
        elif event.get("event") == "error":
            self.log(f"Error ({event.get('type')}): {event.get('message')}")

    def _resolveModel(self, spec: str):
        from DDICSlicerLib import models

        return models.resolve(spec)

    def pollTranslation(self) -> str:
        """Deliver progress; when the worker has ended, import its result (once) and clean up."""
        if self.job is None:
            return worker.IDLE
        state = self.job.poll()
        if state in worker.FINISHED_STATES:
            job, context = self.job, self._jobContext
            self.job, self._jobContext = None, None
            self.lastResult, self.lastLog = job.result, job.log.text
            try:
                if state == worker.SUCCEEDED:
                    self._importResults(job.result, context)
            finally:
                job.cleanup()  # temporary frames and outputs are never left behind
        return state

    def _importResults(self, result, context) -> None:
        from DDICSlicerLib.volumes import load_result, results_to_sequence

        p, inputNode = context["parameterNode"], context["input"]
        name = slicer.mrmlScene.GenerateUniqueName(f"{inputNode.GetName()} pseudo-MRI")
        if context["allFrames"]:
            _sequence, proxy = results_to_sequence(result.outputs, context["browser"], context["sequence"], name)
            p.outputVolume = proxy
        else:
            p.outputVolume = load_result(result.outputs[0], inputNode, name)
        self.log(result.message())

    def cancelTranslation(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def translate(self, p, timeoutSeconds: float = 3600.0):
        """Blocking translation for scripts and tests (events keep flowing); returns the output volume."""
        import time

        self.startTranslation(p)
        deadline = time.monotonic() + timeoutSeconds
        while self.pollTranslation() not in worker.FINISHED_STATES:
            slicer.app.processEvents()
            time.sleep(0.05)
            if time.monotonic() > deadline:
                self.cancelTranslation()
        if self.lastResult.state != worker.SUCCEEDED:
            raise RuntimeError(self.lastResult.message() + "\n" + self.lastLog[-2000:])
        return p.outputVolume

    # -- segmentation ----------------------------------------------------------------------------------------
    def _segmentationWorker(self):
        from DDICSlicerLib.workerclient import WorkerClient

        if self.segmenter is None or not self.segmenter.running:
            self.segmenter = WorkerClient([self.pythonExecutable(), "-m", "ddic.worker"],
                                          env=self.engineEnvironment(False))
            self.segmenter.start()
        return self.segmenter

    def segment(self, p, callback) -> None:
        """Send the prompts to the persistent worker; ``callback(summary, error)`` runs when the mask is in.

        The image is sent once per frame (the worker keeps SAM's embedding); each call then only predicts.
        """
        from DDICSlicerLib import models, segments
        from DDICSlicerLib.volumes import write_frame

        if self.segmentationBusy:
            raise RuntimeError(_("The previous segmentation is still running."))
        usNode = p.inputVolume
        sourceNode = p.outputVolume if p.segmentSource == "Pseudo-MRI" else usNode
        if not usNode or not sourceNode:
            raise ValueError(_("Select the ultrasound (and translate it for the pseudo-MRI) first."))
        points = segments.prompt_points(usNode, p.positivePoints, p.negativePoints)
        box = segments.prompt_box(usNode, p.promptBox)
        if not points and box is None:
            raise ValueError(_("Place at least one inside point or a box on the target."))
        if not p.segmentationNode:
            p.segmentationNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "DDIC segmentation")
            p.segmentationNode.CreateDefaultDisplayNodes()
            p.segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(usNode)
        client = self._segmentationWorker()
        workDir = getattr(self, "_segmentationDir", None) or slicer.util.tempDirectory("DDICSlicerSegment")
        self._segmentationDir = workDir
        load = {"backend": p.backend, "checkpoint": None, "model_type": None,
                "device": "cpu" if p.forceCpu else "auto"}
        if p.backend in ("sam", "auto") and models.is_available(p.samModel):
            load["checkpoint"] = str(models.resolve(p.samModel))
            load["model_type"] = models.manifest().get(p.samModel).arch
        elif p.backend == "sam":
            raise ValueError(_("The SAM model {m} is not downloaded; press Download or choose the classical "
                               "backend.").format(m=p.samModel))
        target = segments.target_by_name(p.target)
        self.segmentationBusy = True

        def fail(reply):
            self.segmentationBusy = False
            callback("", reply.get("error") or _("The segmentation worker reported an error."))

        if client.loaded != load:
            client.request("load", lambda r: None if r.get("ok") else fail(r), **load)
        imageKey = f"{sourceNode.GetID()}:{sourceNode.GetMTime()}"
        if getattr(self, "_segmentationImageKey", None) != imageKey or client.image_path is None:
            imagePath = write_frame(sourceNode, os.path.join(workDir, f"image_{self._maskCounter}.nrrd"))
            self._segmentationImageKey = imageKey
            client.request("set_image", lambda r: None if r.get("ok") else fail(r), path=str(imagePath))
        self._maskCounter += 1
        maskPath = os.path.join(workDir, f"mask_{self._maskCounter}.nrrd")

        def done(reply):
            if not reply.get("ok"):
                return fail(reply)
            self.segmentationBusy = False
            try:
                result = reply.get("result", {})
                mask = self._readMask(result.get("out") or maskPath)
                segments.write_mask(p.segmentationNode, target, mask, usNode)
                summary = _("{t}: {b}, score {s:.2f}, {n} pixels").format(
                    t=target.name, b=result.get("backend", p.backend), s=float(result.get("score") or 0.0),
                    n=int(np.count_nonzero(mask)))
                if target.ventricle:
                    width = segments.atrium_width_mm(mask, usNode)
                    if width is not None:
                        summary += _(", atrium width {w:.1f} mm").format(w=width.width_mm)
                callback(summary, "")
            except Exception as exc:  # noqa: BLE001 - any failure must reach the user as a message
                callback("", str(exc))

        client.request("predict", done, points=points, box=box, out=maskPath)

    @staticmethod
    def _readMask(path: str) -> np.ndarray:
        if path.endswith(".npy"):
            mask = np.load(path, allow_pickle=False)
        else:
            import SimpleITK as sitk

            mask = sitk.GetArrayFromImage(sitk.ReadImage(path))
        return mask.reshape(mask.shape[-2:])

    def pollSegmentation(self) -> None:
        if self.segmenter is not None:
            self.segmenter.poll()

    def stopSegmentationWorker(self) -> None:
        if self.segmenter is not None:
            self.segmenter.stop()
            self.segmenter = None
            self.segmentationBusy = False

    # -- CNR -------------------------------------------------------------------------------------------------
    def updateCnr(self, p):
        from DDICSlicerLib import cnr

        if not (p.inputVolume and p.outputVolume and p.cnrRoi and p.cnrBackground):
            raise ValueError(_("Choose the ultrasound, its pseudo-MRI, an ROI box and a background box."))
        paired = cnr.measure(p.inputVolume, p.outputVolume, p.cnrRoi, p.cnrBackground)
        cnr.update_table(p.cnrTable, paired)
        return paired

    def observeCnrRois(self, p, enable: bool) -> None:
        """Recompute the table whenever either box moves (point modified / defined events)."""
        for node in self._cnrObserved:
            self.removeObserver(node, slicer.vtkMRMLMarkupsNode.PointModifiedEvent, self._onCnrRoiModified)
        self._cnrObserved = []
        if enable:
            for node in (p.cnrRoi, p.cnrBackground):
                if node:
                    self.addObserver(node, slicer.vtkMRMLMarkupsNode.PointModifiedEvent, self._onCnrRoiModified)
                    self._cnrObserved.append(node)

    def _onCnrRoiModified(self, caller, event) -> None:
        try:
            self.updateCnr(self.getParameterNode())
        except Exception as exc:  # noqa: BLE001 - a box dragged off the image: keep the last table, say why once
            logger.debug("CNR not updated: %s", exc)

    def shutdown(self) -> None:
        """End every background process (module cleanup, scene close, application exit)."""
        if self.job is not None:
            self.job.kill()
            self.job.wait(timeout=10)
            self.job.cleanup()
            self.job = None
        self.stopSegmentationWorker()
        self.removeObservers()


#
# DDICSlicerTest
#


class DDICSlicerTest(ScriptedLoadableModuleTest):
    """Runs in Slicer (ctest ``py_DDICSlicer``): phantom frame → demo translation → segment → CNR."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_TranslateSegmentMeasure()

    def test_TranslateSegmentMeasure(self):
        import subprocess

        self.delayDisplay("Rendering a phantom frame")
        logic = DDICSlicerLogic()
        folder = slicer.util.tempDirectory("DDICSlicerTest")
        subprocess.run([logic.pythonExecutable(), "-m", "ddic", "phantom", "--n", "1", "--seed", "7", "--out",
                        folder], env=logic.engineEnvironment(True), check=True, timeout=600)
        framePath = os.path.join(folder, "us", "paired", "000_us.png")
        usNode = slicer.util.loadVolume(framePath, {"singleFile": True, "show": False})
        usNode.SetSpacing(1.094, 1.094, 1.0)  # the canonical grid of ddic.geometry.canonical
        shape = slicer.util.arrayFromVolume(usNode).shape

        self.delayDisplay("Translating with the demo models, 4 steps on the CPU")
        p = logic.getParameterNode()
        p.inputVolume = usNode
        p.steps = 4
        p.forceCpu = True
        logic.ensurePromptNodes(p)
        outNode = logic.translate(p, timeoutSeconds=900)
        self.assertIsNotNone(outNode)
        self.assertNotEqual(outNode.GetID(), usNode.GetID())
        result = slicer.util.arrayFromVolume(outNode)
        self.assertEqual(result.shape, shape)
        self.assertTrue(np.all(np.isfinite(result)))
        self.assertGreaterEqual(float(result.min()), 0.0)
        self.assertLessEqual(float(result.max()), 255.0)
        self.assertGreater(float(result.std()), 0.0)
        a, b = vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
        usNode.GetIJKToRASMatrix(a)
        outNode.GetIJKToRASMatrix(b)
        for r in range(4):
            for c in range(4):
                self.assertAlmostEqual(a.GetElement(r, c), b.GetElement(r, c), places=6)

        self.delayDisplay("Measuring CNR in two boxes")
        center = [0.0, 0.0, 0.0]
        usNode.GetImageData()  # ensure data
        bounds = [0.0] * 6
        usNode.GetRASBounds(bounds)
        for name, dx in (("roi", -15.0), ("background", 15.0)):
            roi = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsROINode", name)
            center = [(bounds[0] + bounds[1]) / 2 + dx, (bounds[2] + bounds[3]) / 2, (bounds[4] + bounds[5]) / 2]
            roi.SetCenter(center)
            roi.SetSize(10.0, 10.0, 10.0)
            if name == "roi":
                p.cnrRoi = roi
            else:
                p.cnrBackground = roi
        paired = logic.updateCnr(p)
        self.assertEqual(p.cnrTable.GetNumberOfRows(), 2)
        self.assertTrue(np.isfinite(paired.us.cnr) and np.isfinite(paired.pseudo_mri.cnr))
        self.assertGreater(paired.us.roi.n, 1)

        self.delayDisplay("Segmenting with the classical backend from one inside point")
        p.backend = "classical"
        p.segmentSource = "Ultrasound"
        p.positivePoints.AddControlPoint(center[0] - 30.0, center[1], center[2])
        results = []
        logic.segment(p, lambda summary, error: results.append((summary, error)))
        import time

        deadline = time.monotonic() + 300
        while not results and time.monotonic() < deadline:
            logic.pollSegmentation()
            slicer.app.processEvents()
            time.sleep(0.05)
        logic.shutdown()
        self.assertTrue(results, "no segmentation reply")
        self.assertEqual(results[0][1], "")
        segmentId = p.segmentationNode.GetSegmentation().GetSegmentIdBySegmentName(TARGET_NAMES[0])
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(p.segmentationNode, segmentId, usNode)
        self.assertGreater(int(mask.sum()), 0)
        self.delayDisplay("Test passed")
