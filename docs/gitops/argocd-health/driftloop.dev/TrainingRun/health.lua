-- Argo CD health check for driftloop.dev/v1alpha1 objects: Dataset, TrainingRun,
-- ModelVersion and Deployment share this one script (it reads only status, which has the
-- same shape on all four). See docs/gitops/README.md for the rules and why.
local hs = { status = "Progressing", message = "Waiting for the driftloop operator" }

-- Ready=False reasons the operator cannot get past without a change from you (the spec,
-- the data, the image; refused data names its defect: EmptyFile, TooFewClasses, ...): the operator's STALLED_REASONS, plus any reason ending in
-- "Failed" that it does not mirror as waiting (Reconciling=True: ImagePullFailed,
-- PodCreationFailed). Any other Ready=False reason is a step on the way. (The operator
-- also mirrors this in a Stalled condition, read first below; the list serves objects
-- without it.)
local terminal = {
  DeadlineExceeded = true,
  DuplicateColumn = true,
  EmptyFile = true,
  InvalidHyperparameters = true,
  InvalidImage = true,
  InvalidRequest = true,
  InvalidSpec = true,
  MalformedRow = true,
  MissingColumn = true,
  MissingTarget = true,
  NoFiles = true,
  NoRows = true,
  NonFiniteValue = true,
  NonNumericValue = true,
  ReproduceModelMismatch = true,
  ResultUnreadable = true,
  SchemaMismatch = true,
  SnapshotCorrupt = true,
  SnapshotMissing = true,
  TargetNotNumeric = true,
  TooFewClasses = true,
  TooFewRows = true,
  TooManyMissing = true,
  TooManyRows = true,
  UnexpectedCategory = true,
  UnknownEstimator = true,
  UnreadableFile = true,
  ValidationFailed = true,
}

local function find_condition(status, ctype)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

local function describe(c)
  local text = c.reason or ""
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

local function is_terminal(reason)
  return reason ~= nil and (terminal[reason] == true or string.sub(reason, -6) == "Failed")
end

local status = obj.status
if status == nil then
  return hs
end

-- The operator has not caught up with the latest spec yet (kstatus "InProgress").
local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end

-- kstatus convention: Stalled=True means no progress without intervention.
local stalled = find_condition(status, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

local ready = find_condition(status, "Ready")

-- A failed Dataset or TrainingRun is final for its generation.
if status.phase == "Failed" then
  hs.status = "Degraded"
  if ready ~= nil and ready.status == "False" then
    hs.message = describe(ready)
  elseif status.failureReason ~= nil then
    hs.message = status.failureReason .. ": " .. (status.failureMessage or "")
  else
    hs.message = "Failed"
  end
  return hs
end

if ready == nil then
  hs.message = "Waiting for the Ready condition"
  return hs
end
if generation ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration < generation then
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  -- A rejected ModelVersion is the promotion gate doing its job, not a fault: it stays
  -- Healthy, and the message says so.
  if obj.kind == "ModelVersion" and status.approval == "rejected" then
    hs.message = "Rejected: " .. (status.approvalReason or "did not pass the promotion policy")
  end
  return hs
end

-- A pod that cannot run yet (an image pull, a refused pod) is waiting, though its reason
-- ends in "Failed": the operator says so in Reconciling=True.
local reconciling = find_condition(status, "Reconciling")
local waiting = reconciling ~= nil and reconciling.status == "True"
if ready.status == "False" and not waiting and is_terminal(ready.reason) then
  hs.status = "Degraded"
end
hs.message = describe(ready)
return hs
